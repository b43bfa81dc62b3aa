def test_login_page(client):
    rv = client.get("/login/")
    assert rv.status_code == 200


def test_admin_station_list(admin_client):
    rv = admin_client.get("/stationview/list/")
    assert rv.status_code == 200, rv.get_data(as_text=True)[:2000]
    assert "菁英公寓" in rv.get_data(as_text=True)
