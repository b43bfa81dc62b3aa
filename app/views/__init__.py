"""Menus of the admin, mirroring the manual. Menu ``name``s and categories are stable English
identifiers (they are permission names); ``label``s are translated (fab-guide §9.3)."""
from flask_babel import lazy_gettext as _l

# (category, label, icon)
CATEGORIES = [
    ("Home", _l("Home"), "fa-home"),
    ("Stations", _l("Stations & piles"), "fa-bolt"),
    ("Orders", _l("Orders"), "fa-list-alt"),
    ("Finance", _l("Finance"), "fa-yen"),
    ("Marketing", _l("Marketing"), "fa-gift"),
    ("Statistics", _l("Statistics"), "fa-bar-chart"),
    ("Interconnect", _l("Interconnect"), "fa-exchange"),
    ("Security", _l("System"), "fa-cogs"),
]


def menu_entries():
    """(view class, menu name, label, icon, category) in menu order."""
    from app.security.views import DepartmentView, PostView, RoleDataScopeView
    from app.views import (
        fault_queues,
        finance,
        home_pages,
        interconnect,
        interconnect_client,
        marketing,
        monitoring,
        orders,
        payments,
        reports,
        stations,
        system,
    )

    return [
        (home_pages.DashboardView, "Dashboard", _l("Dashboard"), "fa-dashboard", "Home"),
        (stations.StationView, "Station management", _l("Station management"), "fa-building", "Stations"),
        (stations.PileView, "Pile management", _l("Pile management"), "fa-plug", "Stations"),
        (stations.ConnectorView, "Connector management", _l("Connector management"), "fa-dot-circle-o",
         "Stations"),
        (stations.ManufacturerView, "Pile manufacturers", _l("Pile manufacturers"), "fa-industry", "Stations"),
        (stations.PileModelView, "Pile models", _l("Pile models"), "fa-cubes", "Stations"),
        (stations.FaultTypeView, "Fault types", _l("Fault types"), "fa-tags", "Stations"),
        (stations.FaultReportView, "Fault reports", _l("Fault reports"), "fa-wrench", "Stations"),
        (stations.PriceTemplateView, "Price templates", _l("Price templates"), "fa-money", "Stations"),
        (monitoring.StationMonitorView, "Station monitor", _l("Station monitor"), "fa-desktop", "Stations"),
        (stations.AlarmView, "Alarms", _l("Alarms"), "fa-bell", "Stations"),
        (stations.StatusLogView, "Status log", _l("Status log"), "fa-history", "Stations"),
        (stations.FeedbackView, "Feedback", _l("Feedback"), "fa-comment", "Stations"),
        (orders.RealtimeOrderView, "Realtime orders", _l("Realtime orders"), "fa-flash", "Orders"),
        (orders.HistoryOrderView, "History orders", _l("History orders"), "fa-list", "Orders"),
        (orders.OccupancyOrderView, "Occupancy orders", _l("Occupancy orders"), "fa-car", "Orders"),
        (orders.AbnormalOrderView, "Abnormal orders", _l("Abnormal orders"), "fa-exclamation-triangle",
         "Orders"),
        (fault_queues.SetAsideDataView, "Set-aside data", _l("Set-aside data"), "fa-inbox", "Orders"),
        (finance.InvoiceView, "Invoices", _l("Invoices"), "fa-file-text-o", "Finance"),
        (finance.ChannelView, "Channels", _l("Channels"), "fa-sitemap", "Finance"),
        (finance.MemberView, "Members", _l("Members"), "fa-users", "Finance"),
        (finance.WalletEntryView, "Balance details", _l("Balance details"), "fa-list-alt", "Finance"),
        (finance.PaymentGatewayView, "Payment gateways", _l("Payment gateways"), "fa-credit-card", "Finance"),
        (payments.PaymentView, "Payment records", _l("Payment records"), "fa-money", "Finance"),
        (payments.RefundView, "Refund records", _l("Refund records"), "fa-undo", "Finance"),
        (finance.OrganizationView, "Organizations", _l("Organizations"), "fa-building-o", "Finance"),
        (finance.OrganizationEntryView, "Organization balance details", _l("Organization balance details"),
         "fa-list-alt", "Finance"),
        (finance.CardView, "Charge cards", _l("Charge cards"), "fa-id-card", "Finance"),
        (finance.FinancialBillView, "Financial bills", _l("Financial bills"), "fa-calculator", "Finance"),
        (finance.OccupancyBillView, "Occupancy bills", _l("Occupancy bills"), "fa-calculator", "Finance"),
        (marketing.CampaignView, "Operation campaigns", _l("Operation campaigns"), "fa-bullhorn", "Marketing"),
        (marketing.InterconnectCampaignView, "Interconnect campaigns", _l("Interconnect campaigns"),
         "fa-random", "Marketing"),
        (marketing.CouponTemplateView, "Coupons", _l("Coupons"), "fa-ticket", "Marketing"),
        (marketing.CouponCampaignView, "Coupon campaigns", _l("Coupon campaigns"), "fa-gift", "Marketing"),
        (marketing.CouponView, "Issued coupons", _l("Issued coupons"), "fa-ticket", "Marketing"),
        (reports.StationReportView, "Station report", _l("Station report"), "fa-line-chart", "Statistics"),
        (reports.OperationReportView, "Operation report", _l("Operation report"), "fa-area-chart",
         "Statistics"),
        (marketing.MarketingReportView, "Marketing report", _l("Marketing report"), "fa-pie-chart", "Statistics"),
        (interconnect.PartnerView, "Partners", _l("Partners"), "fa-exchange", "Interconnect"),
        (interconnect.PushLogView, "Push log", _l("Push log"), "fa-history", "Interconnect"),
        (interconnect_client.PartnerStationView, "Partner stations", _l("Partner stations"), "fa-map-marker",
         "Interconnect"),
        (interconnect_client.ReconciliationDisputeView, "Reconciliation disputes", _l("Reconciliation disputes"),
         "fa-balance-scale", "Interconnect"),
        (system.OperatorView, "Operators", _l("Operators"), "fa-briefcase", "Security"),
        (DepartmentView, "Departments", _l("Departments"), "fa-sitemap", "Security"),
        (PostView, "Posts", _l("Posts"), "fa-id-badge", "Security"),
        (RoleDataScopeView, "Data permissions", _l("Data permissions"), "fa-filter", "Security"),
    ]


def register_views(appbuilder):
    cats = {name: (label, icon) for name, label, icon in CATEGORIES}
    for view, name, label, icon, category in menu_entries():
        clabel, cicon = cats[category]
        appbuilder.add_view(view, name, label=label, icon=icon, category=category,
                            category_label=clabel, category_icon=cicon)
    from app.views import pile_admin
    from app.views.uploads import UploadsView

    appbuilder.add_view_no_menu(UploadsView)
    pile_admin.register(appbuilder)
    from app.views import qrcodes as qrcode_views

    qrcode_views.register(appbuilder)      # QR codes per gun / station sheet, 0xF0 push
    from app.views import health, metrics

    health.register(appbuilder.app)
    metrics.register(appbuilder.app)
    from app.interconnect import server as tcec_server

    tcec_server.register(appbuilder.app)      # T/CEC endpoints for partner platforms
    from app import member_api

    member_api.register(appbuilder.app)       # member app API (/api/app/v1)
    from app import payments_notify

    payments_notify.register(appbuilder.app)  # WeChat Pay callbacks (/pay/wechat/<code>/notify, /refund-notify)
    from app.views import payments as payment_views

    payment_views.register(appbuilder.app)    # refunds panel on member, order and payment pages
    # FAB created "Security" first: give it our label and icon, and put categories in manual order
    menu = appbuilder.menu.menu
    order = {name: i for i, (name, _, _) in enumerate(CATEGORIES)}
    for item in menu:
        if item.name in cats:
            item.label, item.icon = cats[item.name]
        if item.name == "Security":
            # posts (岗位) replace FAB groups; FAB's user chart loads Google's CDN: both hidden
            wanted = ["List Users", "List Roles", "Data permissions", "Departments", "Posts", "Operators", "-",
                      "Base Permissions", "Views/Menus", "Permission on Views/Menus"]
            by_name = {c.name: c for c in item.childs}
            item.childs = [by_name[n] for n in wanted if n in by_name]
    menu.sort(key=lambda item: order.get(item.name, len(order)))
    from app.views import formatters

    formatters.install(appbuilder)  # None -> "-", booleans 是/否, local times, role names on every screen
    from flask import current_app

    formatters.register_jinja(current_app)
    from app.views import marketing

    marketing.register_jinja(current_app)   # the member's coupons on the member page (会员管理)
