"""The time-of-day discount editor of the campaign screens (运营活动 / 互联互通活动 分时段折扣)."""
import json

from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from wtforms import Field
from wtforms.validators import StopValidation

from app.services import campaigns
from app.services.campaigns import CampaignError


class CampaignPeriodsWidget:
    """The time-of-day discount editor: rows of start, end, electricity 折, service 折 (like the price
    template's period editor), kept as JSON in a hidden input."""

    def __call__(self, field, **kwargs):
        from app.extensions import csp_nonce

        value = field._value()
        head = "".join(f"<th>{escape(h)}</th>" for h in (
            _l("Start"), _l("End"), _l("Electricity discount (折)"), _l("Service fee discount (折)"), ""))
        return Markup(f"""
<input type="hidden" id="{field.id}" name="{field.name}" value="{escape(value)}">
<table class="table table-condensed cpms-campaign-periods" data-target="{field.id}">
  <thead><tr>{head}</tr></thead><tbody></tbody></table>
<button type="button" class="btn btn-sm btn-default cpms-add-campaign-period">+ {escape(_l("Add period"))}</button>
<script nonce="{escape(csp_nonce())}">
(function() {{
  var hidden = document.getElementById("{field.id}");
  var table = document.querySelector('table[data-target="{field.id}"]');
  var body = table.querySelector("tbody");
  function row(p) {{
    var tr = document.createElement("tr");
    tr.innerHTML = '<td><input class="form-control s" type="time"></td>' +
      '<td><input class="form-control e" type="text" placeholder="24:00"></td>' +
      '<td><input class="form-control er" type="text" placeholder="10"></td>' +
      '<td><input class="form-control sr" type="text" placeholder="10"></td>' +
      '<td><button type="button" class="btn btn-sm btn-danger">&times;</button></td>';
    tr.querySelector(".s").value = p.start || ""; tr.querySelector(".e").value = p.end || "";
    tr.querySelector(".er").value = p.electricity_rate || ""; tr.querySelector(".sr").value = p.service_rate || "";
    tr.querySelector("button").onclick = function() {{ tr.remove(); sync(); }};
    tr.oninput = sync; tr.onchange = sync;
    body.appendChild(tr);
  }}
  function sync() {{
    var rows = [];
    body.querySelectorAll("tr").forEach(function(tr) {{
      rows.push({{start: tr.querySelector(".s").value, end: tr.querySelector(".e").value,
        electricity_rate: tr.querySelector(".er").value, service_rate: tr.querySelector(".sr").value}});
    }});
    hidden.value = JSON.stringify(rows);
  }}
  var initial = []; try {{ initial = JSON.parse(hidden.value || "[]"); }} catch (e) {{}}
  initial.forEach(row); sync();
  table.parentNode.querySelector(".cpms-add-campaign-period").onclick = function() {{ row({{}}); sync(); }};
}})();
</script>""")


class CampaignPeriodsField(Field):
    """Time-of-day discount periods (JSON rows); checked by :func:`campaigns.parse_campaign_periods`.
    The view writes them (``CampaignView.pre_add`` / ``pre_update``)."""

    widget = CampaignPeriodsWidget()

    def _value(self):
        return json.dumps(self.data or [])

    def process_formdata(self, valuelist):
        raw = valuelist[0] if valuelist else "[]"
        try:
            self.data = json.loads(raw or "[]")
        except ValueError:
            self.data = raw  # reported by pre_validate

    def pre_validate(self, form):
        try:
            self.parsed = campaigns.parse_campaign_periods(self.data if self.data is not None else [])
            mode = form["discount_mode"].data if "discount_mode" in form else None
            campaigns.check_campaign_benefit(mode, self.parsed)
        except CampaignError as exc:
            self.errors.extend(str(exc).split("\n"))
            raise StopValidation() from None

    def populate_obj(self, obj, name):
        pass  # the view applies the periods
