"""Schema checks of the business data model on a plain SQLAlchemy engine (no Flask app)."""
import sys
import warnings
from decimal import Decimal
from pathlib import Path

# no pytest config yet puts the project root on sys.path; do it here
ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import flask_appbuilder.security.sqla.models  # noqa: F401, E402  (ab_user for the FK strings)
import pytest  # noqa: E402
from sqlalchemy import Float, Numeric, create_engine, exc, inspect, select  # noqa: E402
from sqlalchemy.orm import Session, configure_mappers  # noqa: E402

import app.models as models  # noqa: E402
from app.extensions import db  # noqa: E402

METADATA = db.Model.metadata

TENANT_TABLES = {
    "ev_station", "ev_price_template", "ev_pile", "ev_connector", "ev_connector_status_log",
    "ev_alarm", "ev_fault_report", "ev_feedback", "ev_charge_order", "ev_pile_bill",
    "ev_occupancy_order", "ev_order_event", "ev_member", "ev_wallet_entry", "ev_organization",
    "ev_card", "ev_channel", "ev_payment", "ev_invoice", "ev_campaign", "ev_coupon_template",
    "ev_coupon_campaign", "ev_coupon", "ev_daily_station_stat", "ev_partner", "ev_push_log",
    "ev_daily_channel_stat", "ev_partner_station", "ev_reconciliation_dispute",
    "ev_refund",  # payments (issue 11 C)
    "ev_organization_entry",  # organization account ledger (issue 11 E)
}
GLOBAL_TABLES = {"ev_operator", "ev_manufacturer", "ev_pile_model", "ev_fault_type",
                 "ev_payment_gateway"}
CHILD_TABLES = {"ev_price_period", "ev_order_period", "ev_meter_sample", "ev_invoice_order",
                "ev_campaign_station", "ev_campaign_channel", "ev_campaign_period", "ev_coupon_template_station",
                "ev_coupon_campaign_member", "ev_coupon_campaign_item"}
EXPECTED_TABLES = TENANT_TABLES | GLOBAL_TABLES | CHILD_TABLES

EXPECTED_UNIQUE = [
    ("ev_operator", ("code",)),
    ("ev_station", ("code",)),
    ("ev_pile", ("code",)),
    ("ev_connector", ("code",)),
    ("ev_connector", ("pile_id", "gun_no")),
    ("ev_price_template", ("code",)),
    ("ev_manufacturer", ("code",)),
    ("ev_pile_model", ("code",)),
    ("ev_channel", ("code",)),
    ("ev_organization", ("code",)),
    ("ev_card", ("logical_no",)),
    ("ev_card", ("physical_no",)),
    ("ev_member", ("member_no",)),
    ("ev_charge_order", ("order_no",)),
    ("ev_charge_order", ("serial",)),
    ("ev_pile_bill", ("serial",)),
    ("ev_occupancy_order", ("order_no",)),
    ("ev_wallet_entry", ("idempotency_key",)),
    ("ev_organization_entry", ("idempotency_key",)),
    ("ev_coupon", ("code",)),
    ("ev_partner", ("operator_id", "partner_operator_code")),
    ("ev_payment", ("payment_no",)),
    ("ev_payment_gateway", ("code",)),
    ("ev_refund", ("refund_no",)),
    ("ev_daily_station_stat", ("station_id", "day")),
    ("ev_invoice_order", ("order_id",)),          # partial: one live (not released) invoice per order
]

EXPECTED_INDEXES = [
    ("ev_charge_order", ("operator_id", "created_at")),
    ("ev_charge_order", ("operator_id", "status", "created_at")),
    ("ev_charge_order", ("station_id", "created_at")),
    ("ev_charge_order", ("member_id", "created_at")),
    ("ev_charge_order", ("connector_id", "status")),
    ("ev_meter_sample", ("order_id", "at")),
    ("ev_alarm", ("operator_id", "started_at")),
    ("ev_connector_status_log", ("connector_id", "at")),
    ("ev_wallet_entry", ("member_id", "id")),
    ("ev_organization_entry", ("organization_id", "id")),
]

# column name -> (precision, scale) for money-like columns
PRICE = (10, 5)
AMOUNT = (14, 4)
ENERGY = (14, 4)


# money-looking names that are not money
NOT_MONEY = {"ev_station.park_fee", "ev_campaign.discount_mode",
             # a partner's station as it describes it (T/CEC StationInfo text fields)
             "ev_partner_station.electricity_fee", "ev_partner_station.service_fee", "ev_partner_station.park_fee"}


def _expected_scale(column_name):
    name = column_name
    if name.endswith("_rate"):
        return None
    if name.endswith("price"):
        return PRICE
    if "energy" in name or name.startswith("meter_"):
        return ENERGY
    money_words = ("amount", "fee", "balance", "discount_", "cap", "threshold", "face_value",
                   "max_discount", "balance_after")
    if any(word in name for word in money_words):
        return AMOUNT
    return None


@pytest.fixture(scope="module")
def engine():
    eng = create_engine("sqlite://")
    with warnings.catch_warnings():
        warnings.simplefilter("error", exc.SAWarning)
        configure_mappers()
        METADATA.create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def insp(engine):
    return inspect(engine)


def test_all_expected_tables_exist(insp):
    names = set(insp.get_table_names())
    missing = EXPECTED_TABLES - names
    assert not missing, missing
    extra = {n for n in names if n.startswith("ev_")} - EXPECTED_TABLES
    assert not extra, f"tables not classified in this test: {extra}"


def test_every_model_has_tablename_and_integer_pk():
    for name in models.__all__:
        obj = getattr(models, name)
        if isinstance(obj, type) and hasattr(obj, "__table__"):
            assert obj.__tablename__.startswith("ev_"), name
            pk = list(obj.__table__.primary_key.columns)
            assert [c.name for c in pk] == ["id"], name
            assert pk[0].type.python_type is int, name


@pytest.mark.parametrize("table", sorted(TENANT_TABLES))
def test_tenant_tables_have_indexed_not_null_operator_id(insp, table):
    cols = {c["name"]: c for c in insp.get_columns(table)}
    assert "operator_id" in cols, table
    assert cols["operator_id"]["nullable"] is False, table
    leading = [ix["column_names"][0] for ix in insp.get_indexes(table)]
    assert "operator_id" in leading, f"{table}: no index starting with operator_id"
    fks = [fk for fk in insp.get_foreign_keys(table) if fk["constrained_columns"] == ["operator_id"]]
    assert fks and fks[0]["referred_table"] == "ev_operator", table


@pytest.mark.parametrize("table", sorted(GLOBAL_TABLES | CHILD_TABLES))
def test_global_and_child_tables_have_no_operator_id(table):
    assert "operator_id" not in METADATA.tables[table].c, table


def test_no_float_columns_anywhere():
    floats = [f"{t.name}.{c.name}" for t in METADATA.tables.values() if t.name.startswith("ev_")
              for c in t.columns if isinstance(c.type, Float)]
    assert not floats, floats


def test_money_price_energy_columns_are_decimal_numeric_with_right_scale():
    checked = 0
    for table in METADATA.tables.values():
        if not table.name.startswith("ev_"):
            continue
        for col in table.columns:
            expected = _expected_scale(col.name)
            if expected is None or col.foreign_keys or f"{table.name}.{col.name}" in NOT_MONEY:
                continue
            checked += 1
            assert isinstance(col.type, Numeric), f"{table.name}.{col.name} is {col.type!r}"
            assert not isinstance(col.type, Float), f"{table.name}.{col.name}"
            assert (col.type.precision, col.type.scale) == expected, f"{table.name}.{col.name}"
            assert col.type.asdecimal, f"{table.name}.{col.name}"
    assert checked > 60


@pytest.mark.parametrize("table,columns", EXPECTED_UNIQUE)
def test_unique_constraints(insp, table, columns):
    uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints(table)}
    uniques |= {tuple(ix["column_names"]) for ix in insp.get_indexes(table) if ix["unique"]}
    assert columns in uniques, f"{table}{columns} not unique; have {uniques}"


@pytest.mark.parametrize("table,columns", EXPECTED_INDEXES)
def test_list_indexes(insp, table, columns):
    indexes = {tuple(ix["column_names"]) for ix in insp.get_indexes(table)}
    assert columns in indexes, f"{table}{columns} missing; have {indexes}"


def test_lat_lng_numeric_10_6():
    for col in ("lng", "lat"):
        typ = METADATA.tables["ev_station"].c[col].type
        assert isinstance(typ, Numeric) and (typ.precision, typ.scale) == (10, 6)


def _seed(session):
    op = models.Operator(code="MA01H3BQ2", name="Test operator")
    session.add(op)
    session.flush()
    return op


def test_decimal_round_trips_exactly(engine):
    with Session(engine) as session:
        op = _seed(session)
        member = models.Member(operator=op, member_no="M0001", balance=Decimal("98765432.1234"))
        template = models.PriceTemplate(operator=op, code="T1", name="Std")
        template.periods.append(models.PricePeriod(start_minute=0, end_minute=1440, level="flat",
                                                   electricity_price=Decimal("0.12345"),
                                                   service_price=Decimal("0.80001")))
        session.add_all([member, template])
        session.commit()
        mid, tid = member.id, template.id
    with Session(engine) as session:
        balance = session.execute(select(models.Member.balance).where(models.Member.id == mid)).scalar_one()
        assert isinstance(balance, Decimal)
        assert balance == Decimal("98765432.1234")
        template = session.get(models.PriceTemplate, tid)
        period = template.periods[0]
        assert period.electricity_price == Decimal("0.12345")
        assert period.service_price == Decimal("0.80001")
        assert str(template) == "Std" and str(period) == "00:00-24:00"
        session.delete(template)
        session.commit()
        assert session.get(models.PricePeriod, period.id) is None


def test_idempotency_key_and_bill_serial_reject_duplicates(engine):
    with Session(engine) as session:
        op = models.Operator(code="MA01H3BQ3", name="Dup operator")
        member = models.Member(operator=op, member_no="M0002")
        session.add_all([op, member])
        session.flush()
        for _ in range(2):
            session.add(models.WalletEntry(operator=op, member=member, kind="recharge",
                                           amount=Decimal("10"), balance_after=Decimal("10"),
                                           idempotency_key="pay:P1"))
        with pytest.raises(exc.IntegrityError):
            session.flush()
        session.rollback()

    with Session(engine) as session:
        op = models.Operator(code="MA01H3BQ4", name="Bill operator")
        session.add(op)
        session.flush()
        for _ in range(2):
            session.add(models.PileBill(operator=op, serial="3" * 32, pile_code="3" * 14, gun_no=1,
                                        raw_hex="68"))
        with pytest.raises(exc.IntegrityError):
            session.flush()
        session.rollback()


def test_str_of_every_model_does_not_fail():
    for name in models.__all__:
        obj = getattr(models, name)
        if isinstance(obj, type) and hasattr(obj, "__table__"):
            assert isinstance(str(obj()), str), name
            assert isinstance(repr(obj()), str), name
