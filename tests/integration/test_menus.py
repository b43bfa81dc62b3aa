"""Every menu entry opens as the platform admin, in Chinese (default) and in English."""
import pytest
from flask_babel import force_locale

from tests.conftest import ADMIN_PASSWORD


def menu_items(app):
    items = []
    with app.test_request_context("/"):
        for cat in app.appbuilder.menu.get_list():
            for child in cat.childs or []:
                if child.name == "-":
                    continue
                with force_locale("zh"):
                    zh_cat, zh = str(cat.label), str(child.label)
                with force_locale("en"):
                    en_cat, en = str(cat.label), str(child.label)
                items.append((child.get_url(), zh_cat, zh, en_cat, en))
    return items


EXPECTED_CATEGORIES_ZH = ["首页", "电站电桩", "订单管理", "财务管理", "营销活动", "统计分析", "互联互通", "系统管理"]


def test_menu_categories_mirror_the_manual(app):
    with app.test_request_context("/"), force_locale("zh"):
        labels = [str(c.label) for c in app.appbuilder.menu.get_list()]
    assert labels[: len(EXPECTED_CATEGORIES_ZH)] == EXPECTED_CATEGORIES_ZH


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_menu_url_answers_with_its_label(app, admin_client, lang):
    admin_client.get(f"/lang/{lang}")
    items = menu_items(app)
    assert len(items) >= 40
    for url, zh_cat, zh, en_cat, en in items:
        if lang == "zh":
            assert zh != en or zh.isascii() is False, f"menu {en!r} has no Chinese label"
        rv = admin_client.get(url, follow_redirects=True)
        assert rv.status_code == 200, (url, rv.status_code)
        html = rv.get_data(as_text=True)
        label, cat = (zh, zh_cat) if lang == "zh" else (en, en_cat)
        assert label in html, (url, label)
        assert cat in html, (url, cat)
    admin_client.get("/lang/zh")


def test_chinese_is_the_default_language(app):
    c = app.test_client()
    c.post("/login/", data={"username": "admin", "password": ADMIN_PASSWORD})
    html = c.get("/stationview/list/").get_data(as_text=True)
    assert "充电站名称" in html and "电站电桩" in html
