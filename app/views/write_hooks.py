"""The write hooks an admin screen and its REST resource share: each only calls the service rule
(:mod:`app.services.masterdata`), so both paths run the same rules. Put the mixin before the base
class (``class StationView(StationWrite, CpmsModelView)``)."""
from flask import g

from app.services import masterdata


class StationWrite:
    def pre_add(self, item):
        masterdata.prepare_station(item)
        super().pre_add(item)

    def pre_update(self, item):
        masterdata.prepare_station(item)
        g.cpms_template_changed = masterdata.template_changed(item)
        super().pre_update(item)

    def post_update(self, item):
        masterdata.station_saved(item, g.pop("cpms_template_changed", False))


class PileWrite:
    def pre_add(self, item):
        super().pre_add(item)
        masterdata.prepare_pile(self.datamodel.session, item, create_connectors=True)

    def pre_update(self, item):
        super().pre_update(item)
        masterdata.prepare_pile(self.datamodel.session, item)


class ConnectorWrite:
    def pre_add(self, item):
        super().pre_add(item)
        masterdata.prepare_connector(self.datamodel.session, item)

    def pre_update(self, item):
        super().pre_update(item)
        masterdata.prepare_connector(self.datamodel.session, item)


class CardWrite:
    def pre_add(self, item):
        masterdata.prepare_card(self.datamodel.session, item)
        super().pre_add(item)

    def pre_update(self, item):
        masterdata.prepare_card(self.datamodel.session, item)
        super().pre_update(item)


class MemberWrite:
    def pre_add(self, item):
        masterdata.prepare_member(item)
        super().pre_add(item)

    def pre_update(self, item):
        masterdata.prepare_member(item)
        super().pre_update(item)
