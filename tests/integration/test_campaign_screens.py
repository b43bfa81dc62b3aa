"""运营活动 / 互联互通活动 screens: time-of-day periods edited like the price template's periods, station
scope and channels chosen, the window validated, the interconnect campaign bound to a partner channel.
Every campaign saved here is disabled and dated 2019, so it discounts no other test's order."""
import json
import re
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.models import Campaign, Channel, Operator, Station

D = Decimal


def ids(app):
    with app.app_context():
        op = db.session.scalar(select(Operator.id).where(Operator.code == "MA1NJ0001"))
        station = db.session.scalar(select(Station.id).where(Station.operator_id == op).order_by(Station.id))
        channels = db.session.scalars(select(Channel).where(Channel.operator_id == op).order_by(Channel.id)).all()
        inter = [c.id for c in channels if c.channel_type == "interconnect"]
        other = [c.id for c in channels if c.channel_type != "interconnect"]
        return op, station, inter, other


def periods(rows):
    return json.dumps([{"start": s, "end": e, "electricity_rate": er, "service_rate": sr} for s, e, er, sr in rows])


def form(op, name, **kw):
    data = {"name": name, "position": "order_page", "start_at": "2019-03-01 00:00:00",
            "end_at": "2019-03-31 23:59:59", "discount_mode": "time_of_day", "electricity_rate": "",
            "service_rate": "", "description": "分时段", "priority": "0", "enabled": "", "operator": str(op),
            "periods_editor": periods([("09:00", "12:00", "8", "5"), ("22:00", "24:00", "9.5", "")])}
    data.update(kw)
    return data


def errors_on_page(html):
    return [m.strip() for m in re.findall(r'<span class="help-block">\s*([^<]+?)\s*</span>', html)]


def test_time_of_day_campaign_saves_its_periods_and_channels(app, admin_client):
    op, station, _, other = ids(app)
    rv = admin_client.post("/campaignview/add", data=form(op, "TOD screen", stations=[str(station)],
                                                          channels=[str(other[0])]))
    assert rv.status_code == 302, errors_on_page(rv.get_data(as_text=True))
    with app.app_context():
        c = db.session.scalar(select(Campaign).where(Campaign.name == "TOD screen"))
        assert (c.kind, c.discount_mode, c.enabled) == ("operation", "time_of_day", False)
        assert [(p.start_minute, p.end_minute, p.electricity_rate, p.service_rate) for p in c.periods] == [
            (540, 720, D("0.8000"), D("0.5000")), (1320, 1440, D("0.9500"), D("1.0000"))]
        assert [ch.id for ch in c.channels] == [other[0]]
        assert [s.id for s in c.stations] == [station]
        pk = c.id
    html = admin_client.get(f"/campaignview/edit/{pk}").get_data(as_text=True)
    assert "09:00" in html and "22:00" in html            # the editor is prefilled with the rows
    # edit: replace the periods
    rv = admin_client.post(f"/campaignview/edit/{pk}", data=form(op, "TOD screen", periods_editor=periods(
        [("00:00", "08:00", "7", "7")])))
    assert rv.status_code == 302, errors_on_page(rv.get_data(as_text=True))
    with app.app_context():
        c = db.session.get(Campaign, pk)
        assert [(p.start_minute, p.end_minute, p.electricity_rate) for p in c.periods] == [(0, 480, D("0.7000"))]
        assert c.all_stations is False or c.stations == []
    html = admin_client.get(f"/campaignview/show/{pk}").get_data(as_text=True)
    assert "00:00-08:00" in html


def test_period_errors_are_shown_and_nothing_is_saved(app, admin_client):
    op, _, _, _ = ids(app)
    bad = periods([("09:00", "12:00", "8", "5"), ("11:00", "13:00", "8", "5"), ("14:00", "13:00", "8", "5"),
                   ("15:00", "16:00", "12", "5")])
    html = admin_client.post("/campaignview/add", data=form(op, "TOD bad", periods_editor=bad)).get_data(as_text=True)
    assert "09:00-12:00" in html and "11:00-13:00" in html           # the overlap
    assert "14:00-13:00" in html                                     # end before start
    assert "at most 10" in html or "10 折" in html                   # the rate
    html = admin_client.post("/campaignview/add", data=form(op, "TOD none", periods_editor="[]")).get_data(
        as_text=True)
    assert "at least one period" in html or "至少需要一个时段" in html
    html = admin_client.post("/campaignview/add", data=form(op, "TOD window", end_at="2019-02-01 00:00:00")
                             ).get_data(as_text=True)
    assert "The end time must be after the start time." in html or "结束时间" in html
    with app.app_context():
        assert not db.session.scalars(select(Campaign).where(Campaign.name.in_(
            ["TOD bad", "TOD none", "TOD window"]))).all()


def test_fixed_campaign_needs_no_periods(app, admin_client):
    op, _, _, _ = ids(app)
    rv = admin_client.post("/campaignview/add", data=form(op, "Fixed screen", discount_mode="fixed",
                                                          electricity_rate="8", service_rate="5",
                                                          periods_editor="[]"))
    assert rv.status_code == 302, errors_on_page(rv.get_data(as_text=True))
    with app.app_context():
        c = db.session.scalar(select(Campaign).where(Campaign.name == "Fixed screen"))
        assert (c.electricity_rate, c.service_rate, list(c.periods), list(c.channels)) == (
            D("0.8000"), D("0.5000"), [], [])


def test_interconnect_campaign_is_bound_to_a_partner_channel(app, admin_client):
    op, _, inter, other = ids(app)
    page = admin_client.get("/interconnectcampaignview/add").get_data(as_text=True)
    assert 'name="channels"' not in page and 'name="channel"' in page
    rv = admin_client.post("/interconnectcampaignview/add", data=form(op, "Partner TOD", channel=str(inter[0])))
    assert rv.status_code == 302, errors_on_page(rv.get_data(as_text=True))
    with app.app_context():
        c = db.session.scalar(select(Campaign).where(Campaign.name == "Partner TOD"))
        assert (c.kind, c.channel_id, len(c.periods)) == ("interconnect", inter[0], 2)
    # a channel that is not a partner channel is not offered
    html = admin_client.post("/interconnectcampaignview/add", data=form(op, "Partner bad", channel=str(other[0]))
                             ).get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Campaign).where(Campaign.name == "Partner bad")) is None
    assert html


def test_campaign_gift_tip_image_is_uploaded_checked_and_shown_in_scope(app, admin_client, login):
    """赠券提示: an image uploaded on the campaign form is stored, shown on the campaign and served only
    within the operator's scope; a file that is not an image is refused."""
    import io

    from PIL import Image

    from app.services.demo import STAFF_PASSWORD

    op, _station, _inter, _other = ids(app)
    buf = io.BytesIO()
    Image.new("RGB", (24, 12), (30, 120, 200)).save(buf, format="PNG")
    data = form(op, "TOD tip", tip_uploads=[(io.BytesIO(buf.getvalue()), "tip.png")])
    rv = admin_client.post("/campaignview/add", data=data, content_type="multipart/form-data")
    assert rv.status_code == 302, errors_on_page(rv.get_data(as_text=True))
    with app.app_context():
        campaign = db.session.scalar(select(Campaign).where(Campaign.name == "TOD tip"))
        [name] = campaign.gift_tip_images
        cid = campaign.id
    assert re.fullmatch(r"[0-9a-f]{32}\.png", name)
    assert f"/uploads/{name}" in admin_client.get(f"/campaignview/show/{cid}").get_data(as_text=True)
    assert admin_client.get(f"/uploads/{name}").status_code == 200
    assert login("staff_b", STAFF_PASSWORD).get(f"/uploads/{name}").status_code == 404
    staff_a = login("staff_a", STAFF_PASSWORD)
    assert staff_a.get(f"/uploads/{name}").status_code == 200
    bad = form(op, "TOD bad tip", tip_uploads=[(io.BytesIO(b"not an image"), "tip.png")])
    html = staff_a.post("/campaignview/add", data=bad, content_type="multipart/form-data").get_data(as_text=True)
    assert "Only image files (jpg, png, gif, webp) can be uploaded." in html
    with app.app_context():
        assert db.session.scalar(select(Campaign.id).where(Campaign.name == "TOD bad tip")) is None
