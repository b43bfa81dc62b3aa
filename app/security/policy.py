"""The permission policy: the ONE table that says who may use which screen, endpoint and REST method.

The tenant roles (``OperatorAdmin``, ``OperatorStaff``) get exactly the permissions this table
allows (an explicit allow-list, applied by ``app.services.accounts.sync_roles_and_permissions``);
a view-menu missing here gets no tenant permission at all. The platform ``Admin`` role gets
everything except what the table says nobody may do. ``tests/integration/test_permission_matrix.py``
walks every Flask url rule and every FAB permission-view pair of the running app and checks each
demo role's outcome against this table, so a view or endpoint missing here fails that test.

How to add an entry
-------------------
* A new FAB view, chart, form or REST API: add its class permission name (the class name unless
  the class sets ``class_permission_name``) to ``VIEWS`` with a level, e.g.
  ``"InvoiceView": TENANT_READ`` or, with per-permission exceptions,
  ``"ConnectorView": rule(TENANT_READ, can_start=TENANT_ADMIN)``.
* Its menu entry (the ``name`` given to ``add_view``) goes into ``MENUS`` with the audience that may
  see it (normally the audience of the view's ``can_list``).
* A Flask endpoint that has no FAB permission at all (login, static files, an endpoint with its own
  token or signature check such as a partner or member-app API) goes into ``ENDPOINTS`` under its
  endpoint name (``"Blueprint.function"``), with ``PUBLIC``.

Levels (what a view's permissions mean for whom):

=================  =============================================================================
``PLATFORM``       platform admins only (the ``Admin`` role)
``TENANT_ADMIN``   platform admins and operator admins, every permission
``TENANT_READ``    operator admins every permission; read-only staff the read permissions
``CATALOG``        global catalogue: every staff member reads, only platform admins write
``OWN_ACCOUNT``    every logged-in user, on their own account only (the view enforces "own")
``PUBLIC``         no login needed (login page, static files, language switch)
``NOBODY``         nobody, not even platform admins (e.g. bulk delete on money/history lists)
=================  =============================================================================

Read permissions are ``READ_PERMS``. Data scope (which rows) is a separate matter, enforced by
``app.security.scope``; this table only says which screens and methods.
"""
from dataclasses import dataclass, field

# ---- audiences: who holds a permission ------------------------------------------------------
ADMIN = "Admin"                     # must equal AUTH_ROLE_ADMIN
ROLE_OPERATOR_ADMIN = "OperatorAdmin"
ROLE_OPERATOR_STAFF = "OperatorStaff"
TENANT_ROLES = (ROLE_OPERATOR_ADMIN, ROLE_OPERATOR_STAFF)

PUBLIC = "public"
OWN_ACCOUNT = "own_account"
PLATFORM = "platform"
TENANT_ADMIN = "tenant_admin"
TENANT_STAFF = "tenant_staff"       # audience of the read permissions of TENANT_READ / CATALOG
NOBODY = "nobody"

# the roles that hold a permission of each audience
AUDIENCE_ROLES = {
    PUBLIC: frozenset({ADMIN, ROLE_OPERATOR_ADMIN, ROLE_OPERATOR_STAFF}),
    OWN_ACCOUNT: frozenset({ADMIN, ROLE_OPERATOR_ADMIN, ROLE_OPERATOR_STAFF}),
    PLATFORM: frozenset({ADMIN}),
    TENANT_ADMIN: frozenset({ADMIN, ROLE_OPERATOR_ADMIN}),
    TENANT_STAFF: frozenset({ADMIN, ROLE_OPERATOR_ADMIN, ROLE_OPERATOR_STAFF}),
    NOBODY: frozenset(),
}

# ---- levels of a view --------------------------------------------------------------------------
TENANT_READ = "tenant_read"
CATALOG = "catalog"

READ_PERMS = frozenset({"menu_access", "can_list", "can_show", "can_export", "can_get", "can_info",
                        "can_read", "can_serve"})

_LEVEL_DEFAULTS = {
    # level: (audience of read permissions, audience of the others)
    PLATFORM: (PLATFORM, PLATFORM),
    TENANT_ADMIN: (TENANT_ADMIN, TENANT_ADMIN),
    TENANT_READ: (TENANT_STAFF, TENANT_ADMIN),
    CATALOG: (TENANT_STAFF, PLATFORM),
    OWN_ACCOUNT: (OWN_ACCOUNT, OWN_ACCOUNT),
    PUBLIC: (PUBLIC, PUBLIC),
    NOBODY: (NOBODY, NOBODY),
}


# Permissions nobody holds whatever the view's level: FAB's ``/<view>/download/<filename>`` sends
# any file of the upload folder without a scope check; app/views/params.py closes the route and
# uploads are served by ``/uploads/`` (UploadsView) only.
CLOSED_PERMS = {"can_download": NOBODY}


@dataclass(frozen=True)
class Rule:
    level: str
    overrides: dict = field(default_factory=dict)  # permission name -> audience

    def audience(self, permission):
        if permission in self.overrides:
            return self.overrides[permission]
        if permission in CLOSED_PERMS:
            return CLOSED_PERMS[permission]
        read, other = _LEVEL_DEFAULTS[self.level]
        return read if permission in READ_PERMS else other


def rule(level, **overrides):
    return Rule(level, dict(overrides))


# Bulk delete never touches lists of money or history rows: those views have no ``can_delete``,
# and their ``muldelete`` action (inherited from CpmsModelView) is held by nobody.
_NO_BULK_DELETE = {"muldelete": NOBODY}

# ---- the table: view-menus (class permission names) ------------------------------------------
VIEWS = {
    # home, stations and piles
    "DashboardView": rule(TENANT_READ),
    "StationMonitorView": rule(TENANT_READ),
    "StationView": rule(TENANT_READ),
    "PileView": rule(TENANT_READ),
    "ConnectorView": rule(TENANT_READ),                      # can_start: operator admins
    "PileCommandView": rule(TENANT_READ),                    # can_read: staff, can_command: admins
    "QrCodeView": rule(TENANT_READ),                         # can_read: staff print codes, can_push (0xF0): admins
    "PriceTemplateView": rule(TENANT_READ),
    "FaultReportView": rule(TENANT_READ, **_NO_BULK_DELETE),  # can_reply (handle): operator admins
    "AlarmView": rule(TENANT_READ, **_NO_BULK_DELETE),       # can_ack (acknowledge): operator admins
    "StatusLogView": rule(TENANT_READ, **_NO_BULK_DELETE),
    "FeedbackView": rule(TENANT_READ, **_NO_BULK_DELETE),     # can_reply: operator admins
    "ManufacturerView": rule(CATALOG),
    "PileModelView": rule(CATALOG),
    "FaultTypeView": rule(CATALOG),
    "UploadsView": rule(TENANT_READ),
    # orders
    "RealtimeOrderView": rule(TENANT_READ, **_NO_BULK_DELETE),   # can_stop: operator admins
    "HistoryOrderView": rule(TENANT_READ, **_NO_BULK_DELETE),
    "OccupancyOrderView": rule(TENANT_READ, **_NO_BULK_DELETE),
    "AbnormalOrderView": rule(TENANT_READ, **_NO_BULK_DELETE),   # settle/close/reprice: admins
    "SetAsideDataView": rule(PLATFORM),                      # platform-wide queues (samples, bills)
    # finance
    "InvoiceView": rule(TENANT_READ, **_NO_BULK_DELETE),      # can_issue, can_reject: operator admins
    "ChannelView": rule(TENANT_READ),
    "MemberView": rule(TENANT_READ, **_NO_BULK_DELETE),     # can_adjust (balance): operator admins
    "WalletEntryView": rule(TENANT_READ, **_NO_BULK_DELETE),
    "PaymentGatewayView": rule(CATALOG),
    "PaymentView": rule(TENANT_READ, **_NO_BULK_DELETE),     # 支付记录: read only
    "RefundView": rule(TENANT_READ, **_NO_BULK_DELETE),      # 退款记录: can_retry (a failed refund): operator admins
    "OrganizationView": rule(TENANT_READ),                   # can_adjust (account top-up/adjust): operator admins
    "OrganizationEntryView": rule(TENANT_READ, **_NO_BULK_DELETE),   # organization ledger: read-only
    "CardView": rule(TENANT_READ),
    "FinancialBillView": rule(TENANT_READ, **_NO_BULK_DELETE),
    "OccupancyBillView": rule(TENANT_READ, **_NO_BULK_DELETE),
    # marketing
    "CampaignView": rule(TENANT_READ),
    "InterconnectCampaignView": rule(TENANT_READ),
    "CouponTemplateView": rule(TENANT_READ),
    "CouponCampaignView": rule(TENANT_READ),                 # issue (issue now): operator admins
    "CouponView": rule(TENANT_READ, **_NO_BULK_DELETE),      # issued coupons (history); void: operator admins
    "MarketingReportView": rule(TENANT_READ),                # 营销统计
    # statistics
    "StationReportView": rule(TENANT_READ),
    "OperationReportView": rule(TENANT_READ),
    # interconnect
    "PartnerView": rule(TENANT_READ, can_show_secrets=PLATFORM),
    "PushLogView": rule(TENANT_READ, **_NO_BULK_DELETE),
    "PartnerStationView": rule(TENANT_READ, **_NO_BULK_DELETE),  # can_fetch (获取充电站): operator admins
    "ReconciliationDisputeView": rule(TENANT_READ, **_NO_BULK_DELETE),
    # system
    "OperatorView": rule(CATALOG),
    "DepartmentView": rule(TENANT_READ),
    "PostView": rule(PLATFORM),
    "RoleDataScopeView": rule(PLATFORM),
    # FAB security views: platform only, except users (operator admins manage the users of their
    # own operator, never granting a role they do not hold: app.security.views) and the user's
    # own account (profile, own password with the old one)
    "CpmsUserDBModelView": rule(TENANT_ADMIN, can_userinfo=OWN_ACCOUNT, resetmypassword=OWN_ACCOUNT,
                                userinfoedit=OWN_ACCOUNT),
    "ResetPasswordView": rule(TENANT_ADMIN),                 # scoped in the view: own operator's users
    "ResetMyPasswordView": rule(OWN_ACCOUNT),                # asks for the old password
    "UserInfoEditView": rule(OWN_ACCOUNT),                   # edits g.user only
    "RoleModelView": rule(PLATFORM),
    "UserGroupModelView": rule(PLATFORM),                    # group roles count in the data scope
    "PermissionModelView": rule(PLATFORM),
    "ViewMenuModelView": rule(PLATFORM),
    "PermissionViewModelView": rule(PLATFORM),
    "UserStatsChartView": rule(PLATFORM),
    "MenuApi": rule(PLATFORM),
    "OpenApi": rule(PLATFORM),
    "SwaggerView": rule(PLATFORM),
    # integrator REST API (JWT)
    "StationApi": rule(TENANT_READ),
    "PileApi": rule(TENANT_READ),
    "ConnectorApi": rule(TENANT_READ),
    "PriceTemplateApi": rule(TENANT_READ),
    "PartnerApi": rule(TENANT_READ),
    "MemberApi": rule(TENANT_READ),
    "CardApi": rule(TENANT_READ),
    "OrderApi": rule(TENANT_READ),
    "OperatorApi": rule(CATALOG),
}

# ---- menu entries and categories (permission ``menu_access``) -------------------------------
MENUS = {
    "Home": TENANT_STAFF, "Stations": TENANT_STAFF, "Orders": TENANT_STAFF, "Finance": TENANT_STAFF,
    "Marketing": TENANT_STAFF, "Statistics": TENANT_STAFF, "Interconnect": TENANT_STAFF,
    "Security": TENANT_STAFF,
    "Dashboard": TENANT_STAFF, "Station management": TENANT_STAFF, "Pile management": TENANT_STAFF,
    "Connector management": TENANT_STAFF, "Pile manufacturers": TENANT_STAFF, "Pile models": TENANT_STAFF,
    "Fault types": TENANT_STAFF, "Fault reports": TENANT_STAFF, "Price templates": TENANT_STAFF,
    "Station monitor": TENANT_STAFF, "Alarms": TENANT_STAFF, "Status log": TENANT_STAFF,
    "Feedback": TENANT_STAFF, "Realtime orders": TENANT_STAFF, "History orders": TENANT_STAFF,
    "Occupancy orders": TENANT_STAFF, "Abnormal orders": TENANT_STAFF, "Set-aside data": PLATFORM,
    "Invoices": TENANT_STAFF,
    "Channels": TENANT_STAFF, "Members": TENANT_STAFF, "Balance details": TENANT_STAFF,
    "Payment gateways": TENANT_STAFF, "Payment records": TENANT_STAFF, "Refund records": TENANT_STAFF,
    "Organizations": TENANT_STAFF, "Organization balance details": TENANT_STAFF,   # issue 11 E
    "Charge cards": TENANT_STAFF, "Financial bills": TENANT_STAFF,
    "Occupancy bills": TENANT_STAFF, "Operation campaigns": TENANT_STAFF,
    "Interconnect campaigns": TENANT_STAFF, "Coupons": TENANT_STAFF, "Coupon campaigns": TENANT_STAFF,
    "Issued coupons": TENANT_STAFF, "Marketing report": TENANT_STAFF,
    "Station report": TENANT_STAFF, "Operation report": TENANT_STAFF, "Partners": TENANT_STAFF,
    "Push log": TENANT_STAFF, "Partner stations": TENANT_STAFF, "Reconciliation disputes": TENANT_STAFF,
    "Operators": TENANT_STAFF, "Departments": TENANT_STAFF,
    "List Users": TENANT_ADMIN,
    "Posts": PLATFORM, "Data permissions": PLATFORM, "List Roles": PLATFORM, "List Groups": PLATFORM,
    "User's Statistics": PLATFORM, "Base Permissions": PLATFORM, "Views/Menus": PLATFORM,
    "Permission on Views/Menus": PLATFORM,
}

# ---- Flask endpoints without a FAB permission -----------------------------------------------
# member app API endpoints (function names in app/member_api/*): add yours here
MEMBER_API = (
    "openapi", "me",
    "coupon_list", "coupon_usable", "station_campaigns",  # coupons, station campaigns (coupons.py)
    "stations_nearby", "station_detail", "gun_by_qr",  # stations and guns (stations.py)
    "charging_start", "charging_stop", "charging_current", "charging_live",  # charging (charging.py)
    "orders_list", "order_detail", "occupancy_orders_list", "occupancy_order_detail",  # orders (orders.py)
    "sms_code", "sms_login", "wechat_login", "wechat_bind", "refresh", "logout",  # login (login.py)
    "update_me", "wallet", "wallet_entries",  # profile, wallet reading (profile.py, wallet.py)
    "invoice_orders", "request_invoice", "invoice_list", "invoice_detail",  # invoices (invoices.py)
    "fault_types", "fault_report_create", "fault_report_list", "fault_report_detail",  # fault reports, feedback
    "feedback_create", "feedback_list", "feedback_detail",  # (feedback.py)
    "topup_create", "topup_status", "wallet_refund", "payments_list",  # payments (payments.py)
)

ENDPOINTS = {
    "static": PUBLIC,
    "appbuilder.static": PUBLIC,
    "AuthDBView.login": PUBLIC,          # the security manager's auth view (app/security/sessions.py)
    "AuthDBView.logout": PUBLIC,
    "LocaleView.index": PUBLIC,
    "UtilView.back": PUBLIC,
    "HomeIndexView.index": PUBLIC,       # redirects to the dashboard or the login page
    "SecurityApi.login": PUBLIC,         # JWT login (rate limited)
    "SecurityApi.refresh": PUBLIC,       # needs a refresh token
    "healthz": PUBLIC,                   # load balancer / supervisor probe: DB and Redis up (app/views/health.py)
    "metrics": PUBLIC,                   # Prometheus scrape, own token check: METRICS_TOKEN (app/views/metrics.py)
    # T/CEC partner endpoints (app/interconnect/server.py): their own token + signature checks
    **{f"tcec.{name}": PUBLIC for name in (
        "query_token", "query_stations_info", "query_station_status", "query_station_stats", "query_equip_auth",
        "query_equip_business_policy", "query_start_charge", "query_equip_charge_status", "query_stop_charge",
        "check_charge_orders")},
    # WeChat Pay callbacks (app/payments_notify.py): signature checked with the gateway's WeChat Pay public key
    "pay_notify.notify": PUBLIC,
    "pay_notify.refund_notify": PUBLIC,
    # member app API (app/member_api): members are not FAB users; member_required checks their token
    **{f"member_api.{name}": PUBLIC for name in MEMBER_API},
}


class PolicyMissing(KeyError):
    """A view-menu, menu or endpoint has no entry in the policy table."""


def audience(view_menu, permission):
    """The audience of ``permission`` on ``view_menu``; PolicyMissing if the table lacks it."""
    if permission == "menu_access" and view_menu in MENUS:
        return MENUS[view_menu]
    entry = VIEWS.get(view_menu)
    if entry is None:
        raise PolicyMissing(f"no policy entry for view-menu {view_menu!r} (permission {permission!r}): "
                            "add it to app/security/policy.py")
    return entry.audience(permission)


def endpoint_audience(endpoint):
    if endpoint not in ENDPOINTS:
        raise PolicyMissing(f"no policy entry for endpoint {endpoint!r}: add it to app/security/policy.py")
    return ENDPOINTS[endpoint]


def roles_allowed(view_menu, permission):
    """Names of the built-in roles that hold ``permission`` on ``view_menu``."""
    return AUDIENCE_ROLES[audience(view_menu, permission)]


def is_known(view_menu, permission):
    try:
        audience(view_menu, permission)
    except PolicyMissing:
        return False
    return True
