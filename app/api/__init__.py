"""REST APIs. Integrator resources (ModelRestApi + JWT) live in app.api.resources."""


def register_apis(appbuilder):
    from app.api.resources import RESOURCES

    for api in RESOURCES:
        appbuilder.add_api(api)
