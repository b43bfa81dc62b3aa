def test_peek(admin_client):
    html = admin_client.get("/historyorderview/list/").get_data(as_text=True)
    i = html.find("new AdminFilters")
    print(html[i:i+1500])
    html = admin_client.get("/organizationview/show/1").get_data(as_text=True)
    print("RELATED", "memberview" in html.lower(), html.count("<table"))
