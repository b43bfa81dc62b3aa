"""Demo data: two Nanjing operators with stations, price templates (尖峰平谷), piles and guns,
members with wallets, organisations with charge cards, partners, and one staff user each.
Idempotent: nothing is loaded twice."""
import random
from datetime import date
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import (
    Card,
    Channel,
    Connector,
    FaultType,
    Manufacturer,
    Member,
    Operator,
    Organization,
    Partner,
    PaymentGateway,
    Pile,
    PileModel,
    PricePeriod,
    PriceTemplate,
    Station,
)
from app.security.models import Department, Post
from app.services import payments, wallet
from app.services.accounts import ROLE_OPERATOR_ADMIN, ROLE_OPERATOR_STAFF

STAFF_PASSWORD = "staff-pass-1"
OPERATORS = [("MA1NJ0001", "南京桩联新能源有限公司", "桩联联"), ("MA1NJ0002", "金陵快充科技有限公司", "金陵快充")]
MANUFACTURERS = [("MA21N5XJ6", "南京安充智能科技有限公司", "南京市江宁区", "王工", "025-52101234"),
                 ("589425705", "南京能瑞电力科技有限公司", "南京市雨花台区", "李工", "025-86501234"),
                 ("MA1X7Q2K1", "江苏力力充电设备有限公司", "南京市浦口区", "张工", "18563635656")]
MODELS = [("AC-GIAN11-P", 0, "ac", "7", 1), ("AC-ZD120kW双枪", 0, "dc", "120", 2),
          ("NRKJ9300-K20", 1, "dc", "120", 2), ("AC-RH40kW单枪", 0, "dc", "40", 1),
          ("AC-RH60kW双枪", 0, "dc", "60", 2), ("LL-AC7-S", 2, "ac", "7", 1)]
FAULT_TYPES = ["有车占位", "无法启动", "二维码损坏", "导航不准", "跳枪", "充电桩损坏"]
# (operator index, name, district, district code, address, lng, lat, site type)
STATIONS = [
    (0, "菁英公寓", "雨花台区", "320114", "大周路与英才路交叉口西北方向77米软件谷菁英公寓B区",
     "118.778074", "31.987346", "residential"),
    (0, "天隆寺地铁站", "雨花台区", "320114", "宁丹路天隆寺地铁站1号口停车场", "118.762151", "31.983542",
     "transport_hub"),
    (0, "雨花客厅", "雨花台区", "320114", "雨花大道2号雨花客厅地下停车场", "118.772345", "31.995870",
     "public_institution"),
    (0, "大定坊", "秦淮区", "320104", "大定坊路18号园区停车场", "118.798126", "32.003017", "industrial_park"),
    (0, "安德门地铁站", "雨花台区", "320114", "安德门大街安德门地铁站P+R停车场", "118.765843", "32.003281",
     "transport_hub"),
    (0, "万象广场", "建邺区", "320105", "江东中路万象天地地下二层", "118.731540", "32.016420", "residential"),
    (1, "城南公馆", "秦淮区", "320104", "应天大街城南公馆小区东门", "118.785420", "32.010215", "residential"),
    (1, "莲花新城北苑", "江宁区", "320115", "双龙大道莲花新城北苑", "118.832176", "31.960431", "residential"),
    (1, "油坊桥", "建邺区", "320105", "油坊桥地铁站北侧公共停车场", "118.703318", "31.977124", "roadside"),
]
# YKC-compatible 尖峰平谷: (start, end, level, electricity, service) — 4 price pairs, half-hour grid
TOU = [("00:00", "08:00", "valley", "0.31000", "0.50000"), ("08:00", "10:00", "flat", "0.62000", "0.60000"),
       ("10:00", "14:00", "peak", "1.05000", "0.70000"), ("14:00", "17:00", "flat", "0.62000", "0.60000"),
       ("17:00", "19:00", "sharp", "1.25000", "0.80000"), ("19:00", "21:00", "peak", "1.05000", "0.70000"),
       ("21:00", "24:00", "flat", "0.62000", "0.60000")]
FLAT = [("00:00", "24:00", "flat", "0.65000", "0.55000")]


def _minutes(text):
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def _template(op, code, name, rows):
    tpl = PriceTemplate(operator=op, code=code, name=name)
    tpl.periods = [PricePeriod(start_minute=_minutes(s), end_minute=_minutes(e), level=lv,
                               electricity_price=Decimal(ep), service_price=Decimal(sp))
                   for s, e, lv, ep, sp in rows]
    db.session.add(tpl)
    return tpl


def load_demo_data(seed=20240311):
    session = db.session
    if session.scalar(select(Operator).where(Operator.code == OPERATORS[0][0])):
        return "demo data already loaded"
    rnd = random.Random(seed)
    ops = [Operator(code=c, name=n, short_name=s, contact="运营部", tel1="025-8888000" + str(i + 1),
                    reg_address="江苏省南京市") for i, (c, n, s) in enumerate(OPERATORS)]
    session.add_all(ops)
    makers = [Manufacturer(code=c, name=n, address=a, contact=ct, phone=p) for c, n, a, ct, p in MANUFACTURERS]
    session.add_all(makers)
    models = [PileModel(code=c, name=c, manufacturer=makers[m], pile_type=t, power_kw=Decimal(p), gun_count=g)
              for c, m, t, p, g in MODELS]
    session.add_all(models)
    for i, name in enumerate(FAULT_TYPES, 1):
        if not session.scalar(select(FaultType).where(FaultType.name == name)):
            session.add(FaultType(name=name, sort=i))
    for code, gtype, name in (("wallet", "wallet", "钱包支付"), ("wechat", "wechat", "微信支付")):
        if not session.scalar(select(PaymentGateway).where(PaymentGateway.code == code)):
            session.add(PaymentGateway(code=code, gateway_type=gtype, name=name, display_name=name))
    templates = {}
    for i, op in enumerate(ops):
        templates[i] = (_template(op, f"TPL{i + 1}01", f"{op.short_name}尖峰平谷", TOU),
                        _template(op, f"TPL{i + 1}02", f"{op.short_name}平价", FLAT))
    channels = {}
    for i, op in enumerate(ops):
        n = i + 1
        channels[i] = [
            Channel(operator=op, code=f"CH{n}MP", name=f"{op.short_name}微信小程序", channel_type="mini_program",
                    identifier=f"wx3537afb716e02b{n:02d}"),
            Channel(operator=op, code=f"CH{n}PILE", name=f"{op.short_name}充电桩启动", channel_type="pile"),
            Channel(operator=op, code=f"CH{n}XDT", name="新电途", channel_type="interconnect", identifier="新电途"),
            Channel(operator=op, code=f"CH{n}JSJG", name="江苏省监管", channel_type="interconnect",
                    identifier="江苏省监管"),
        ]
        session.add_all(channels[i])
    stations = []
    for idx, (oi, name, district, dcode, addr, lng, lat, site) in enumerate(STATIONS, 1):
        st = Station(operator=ops[oi], code=f"{idx:04d}", name=name, station_type="public", status="normal",
                     site_type=site, ownership="self", province="江苏省", province_code="320000", city="南京市",
                     city_code="320100", district=district, district_code=dcode, area_code=dcode,
                     address=f"江苏省南京市{district}{addr}", lng=Decimal(lng), lat=Decimal(lat),
                     park_nums=rnd.choice([8, 12, 20, 30]), park_info="地面停车场", site_guide="进入停车场后右转",
                     services=["wc", "shop"], photos=[], business_hours="00:00-24:00",
                     station_tel="025-8888" + f"{idx:04d}", service_tel="400-000-0000",
                     price_template=templates[oi][0 if idx % 3 else 1],
                     occupancy_enabled=idx % 2 == 1, occupancy_free_minutes=15, occupancy_price=Decimal("0.10000"),
                     occupancy_unit="minute", occupancy_cap=Decimal("30.0000"))
        stations.append(st)
    session.add_all(stations)
    session.flush()
    piles = 0
    for st in stations:
        for k in range(1, 4 if st.operator is ops[0] else 3):
            model = models[(piles + k) % len(models)]
            code = f"{st.area_code}{2403}{piles + 1:04d}"
            pile = Pile(operator=st.operator, station=st, code=code, name=f"{st.name}{k}号机", model=model,
                        manufacturer=model.manufacturer, pile_type=model.pile_type, protocol="ykc15",
                        power_kw=model.power_kw, gun_count=model.gun_count,
                        production_date=date(2023, 10, 1), commissioning_date=date(2024, 3, 1))
            for g in range(1, model.gun_count + 1):
                pile.connectors.append(Connector(
                    operator=st.operator, station=st, gun_no=g, code=f"{code}{g:02d}", name=f"{pile.name}{g}号枪",
                    interface_type="dc_gun" if model.pile_type == "dc" else "ac_socket", national_standard="2015",
                    voltage_upper=Decimal("750") if model.pile_type == "dc" else Decimal("220"),
                    voltage_lower=Decimal("200") if model.pile_type == "dc" else Decimal("220"),
                    current=Decimal("250") if model.pile_type == "dc" else Decimal("32"),
                    power_kw=model.power_kw / model.gun_count, park_no=f"{100 + piles * 2 + g}"))
            session.add(pile)
            piles += 1
    session.flush()
    orgs = []
    for i, op in enumerate(ops):
        org = Organization(operator=op, name=f"{op.short_name}车队", code=f"ORG{i + 1:03d}",
                           company_name=f"南京{['出租', '物流'][i]}汽车有限公司", contact="车队长",
                           phone=f"1860619662{i}")
        orgs.append(org)
        session.add(org)
    members = []
    for n in range(12):
        oi = n % 2
        m = Member(operator=ops[oi], member_no=f"{100 + n}", username=f"1885101{n:04d}", nickname="微信用户",
                   phone=f"1885101{n:04d}", status="active", plate_no=f"苏A{n:02d}D{n:02d}8",
                   organization=orgs[oi] if n < 4 else None, channel=channels[oi][0])
        members.append(m)
        session.add(m)
    session.flush()
    for n, m in enumerate(members):
        amount = Decimal(rnd.choice(["50.0000", "100.0000", "200.0000", "37.4200", "90.1816"]))
        if payments.to_fen_or_none(amount) is not None:
            # top-ups through the demo gateway: the real payment path (payment, credit, ledger entry)
            payments.demo_topup(m.id, amount, session=session)
        else:                   # not whole fen: not payable through a gateway, a plain ledger entry
            wallet.post_entry(m.id, amount, "recharge", idempotency_key=f"demo:recharge:{m.member_no}",
                              remark="demo recharge")
        if n == len(members) - 1:
            # one wallet refund (支付记录 and 余额明细 show it): 20 yuan topped up, then refunded
            payments.demo_topup(m.id, Decimal("20.00"), session=session)
            payments.demo_wallet_refund(m.id, Decimal("20.00"), "演示退款", session=session)
        if n < 6:
            session.add(Card(operator=m.operator, organization=m.organization, member=m,
                             logical_no=f"{8800000000000000 + n:016d}",
                             physical_no=f"{0xA1B2C3D400000000 + n:016X}", card_type="online"))
    for i, op in enumerate(ops):
        session.add(Partner(
            operator=op, name="新电途" if i == 0 else "江苏省监管平台",
            partner_type="platform" if i == 0 else "regulator",
            partner_operator_code="MA25CNM38" if i == 0 else "014406554",
            operator_secret="7hUeAsYVBrjw8sup", data_secret="YPFVz1OvAS4nSwLW", data_secret_iv="5tLoP60aR9QUB5Mx",
            sig_secret="S94xUpTpOIILJBk8", base_url="http://127.0.0.1:9/evcs/v1.0/",
            our_operator_code=op.code, our_operator_secret="VGeMsui43xRRmPsA", our_data_secret="o1NVKKR0VyD7hTdS",
            our_data_secret_iv="8J2gVMQix2PODmfh", our_sig_secret="RyKCIR1EwwsW0FWr",
            channel=channels[i][2 if i == 0 else 3], tenant_id="7",
            push_enabled=False))     # a demo partner has no endpoint: pushes start once a real one is set
    depts = {}
    root = Department(name="平台运营中心", path="/", sort=0)
    session.add(root)
    for i, op in enumerate(ops):
        d = Department(name=op.short_name, operator=op, parent=root, path="/", sort=i + 1)
        session.add(d)
        depts[i] = d
    session.flush()
    root.path = f"/{root.id}/"
    for d in depts.values():
        d.path = f"{root.path}{d.id}/"
    posts = {}
    for code, name, sort in (("ceo", "董事长", 1), ("ops", "运维专员", 2), ("fin", "财务专员", 3)):
        post = session.scalar(select(Post).where(Post.code == code)) or Post(code=code, name=name, sort=sort)
        session.add(post)
        posts[code] = post
    session.commit()
    from app.services.demo_marketing import load_demo_marketing

    load_demo_marketing(ops)  # campaign + coupons (issue 13), before any demo history is replayed
    sm = current_app.appbuilder.sm
    role_admin, role_staff = sm.find_role(ROLE_OPERATOR_ADMIN), sm.find_role(ROLE_OPERATOR_STAFF)
    staff_lines = []
    for i, (username, role, post) in enumerate((("staff_a", role_admin, "ops"), ("staff_b", role_admin, "ops"),
                                                ("viewer_a", role_staff, "fin"))):
        oi = 0 if username.endswith("_a") else 1
        if sm.find_user(username=username):
            continue
        user = sm.add_user(username, ops[oi].short_name, "员工", f"{username}@example.com", role, STAFF_PASSWORD)
        user = session.get(sm.user_model, user.id)
        user.operator_id, user.department_id = ops[oi].id, depts[oi].id
        user.nickname, user.phone = f"{ops[oi].short_name}{i + 1}", f"1331234567{i}"
        user.posts = [posts[post]]
        staff_lines.append(f"  {username} / {STAFF_PASSWORD} ({role.name}, {ops[oi].short_name})")
    session.commit()
    return "\n".join([f"Demo data loaded: {len(ops)} operators, {len(stations)} stations, {piles} piles, "
                      f"{len(members)} members.", "Demo staff accounts:"] + staff_lines)
