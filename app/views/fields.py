"""Form fields and validators shared by the admin screens."""
import json
import os
import re
import uuid

from flask import current_app, request
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from wtforms import Field, MultipleFileField, SelectMultipleField
from wtforms.validators import StopValidation, ValidationError

from app.services.price_templates import PriceTemplateError, parse_periods, validate_periods

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".gif", ".webp"}


class Digits:
    """Exactly ``n`` digits (pile codes 14, gun codes 16)."""

    def __init__(self, n):
        self.n = n

    def __call__(self, form, field):
        if field.data and not re.fullmatch(rf"\d{{{self.n}}}", str(field.data)):
            raise ValidationError(_l("Must be exactly %(n)d digits.", n=self.n))


class Range:
    def __init__(self, lo, hi, what):
        self.lo, self.hi, self.what = lo, hi, what

    def __call__(self, form, field):
        if field.data is not None and not (self.lo <= field.data <= self.hi):
            raise ValidationError(_l("%(what)s must be between %(lo)s and %(hi)s.",
                                     what=self.what, lo=self.lo, hi=self.hi))


class PhotosField(MultipleFileField):
    """Image uploads, stored under UPLOAD_FOLDER; populate_obj appends to a JSON list."""

    def pre_validate(self, form):
        from app.views.uploads import check_image

        self._ext = {}
        for f in self.data or []:
            if getattr(f, "filename", "") and os.path.splitext(f.filename)[1].lower() not in IMAGE_EXT:
                raise ValidationError(_l("Only image files (jpg, png, gif, webp) can be uploaded."))
            if getattr(f, "filename", ""):
                self._ext[id(f)] = check_image(f)  # by content (Pillow), not by the name

    def populate_obj(self, obj, name):
        folder = current_app.config["UPLOAD_FOLDER"]
        os.makedirs(folder, exist_ok=True)
        stored = list(getattr(obj, "photos", None) or [])
        for f in self.data or []:
            if not getattr(f, "filename", ""):
                continue
            from app.views.uploads import check_image

            fname = uuid.uuid4().hex + (getattr(self, "_ext", {}).get(id(f)) or check_image(f))
            f.save(os.path.join(folder, fname))
            stored.append(fname)
        obj.photos = stored


class JSONListSelectField(SelectMultipleField):
    """Multi-select stored as a JSON list column."""

    def process_data(self, value):
        super().process_data(list(value or []))


class PeriodsWidget:
    def __call__(self, field, **kwargs):
        from app.extensions import csp_nonce
        from app.models.station import PRICE_LEVEL

        value = field._value()
        levels = "".join(f'<option value="{v}">{escape(_l(label))}</option>' for v, label in PRICE_LEVEL)
        head = "".join(f"<th>{escape(h)}</th>" for h in (
            _l("Start"), _l("End"), _l("Level"), _l("Electricity price (yuan/kWh)"),
            _l("Service price (yuan/kWh)"), ""))
        return Markup(f"""
<input type="hidden" id="{field.id}" name="{field.name}" value="{escape(value)}">
<table class="table table-condensed cpms-periods" data-target="{field.id}">
  <thead><tr>{head}</tr></thead><tbody></tbody></table>
<button type="button" class="btn btn-sm btn-default cpms-add-period">+ {escape(_l("Add period"))}</button>
<template class="cpms-level-options">{levels}</template>
<script nonce="{escape(csp_nonce())}">
(function() {{
  var hidden = document.getElementById("{field.id}");
  var table = document.querySelector('table[data-target="{field.id}"]');
  var body = table.querySelector("tbody");
  var levels = document.querySelector("template.cpms-level-options").innerHTML;
  function row(p) {{
    var tr = document.createElement("tr");
    tr.innerHTML = '<td><input class="form-control s" type="time" step="1800"></td>' +
      '<td><input class="form-control e" type="text" placeholder="24:00"></td>' +
      '<td><select class="form-control l">' + levels + '</select></td>' +
      '<td><input class="form-control ep" type="text"></td>' +
      '<td><input class="form-control sp" type="text"></td>' +
      '<td><button type="button" class="btn btn-sm btn-danger">&times;</button></td>';
    tr.querySelector(".s").value = p.start || ""; tr.querySelector(".e").value = p.end || "";
    tr.querySelector(".l").value = p.level || "flat";
    tr.querySelector(".ep").value = p.electricity_price || ""; tr.querySelector(".sp").value = p.service_price || "";
    tr.querySelector("button").onclick = function() {{ tr.remove(); sync(); }};
    tr.oninput = sync; tr.onchange = sync;
    body.appendChild(tr);
  }}
  function sync() {{
    var rows = [];
    body.querySelectorAll("tr").forEach(function(tr) {{
      rows.push({{start: tr.querySelector(".s").value, end: tr.querySelector(".e").value,
        level: tr.querySelector(".l").value, electricity_price: tr.querySelector(".ep").value,
        service_price: tr.querySelector(".sp").value}});
    }});
    hidden.value = JSON.stringify(rows);
  }}
  var initial = []; try {{ initial = JSON.parse(hidden.value || "[]"); }} catch (e) {{}}
  if (!initial.length) initial = [{{start: "00:00", end: "24:00", level: "flat"}}];
  initial.forEach(row); sync();
  table.parentNode.querySelector(".cpms-add-period").onclick = function() {{ row({{}}); sync(); }};
}})();
</script>""")


class PeriodsField(Field):
    """The price-template period editor. Data: list of row dicts; validated by the service."""

    widget = PeriodsWidget()

    def __init__(self, label=None, validators=None, ykc_check=None, **kwargs):
        super().__init__(label, validators, **kwargs)
        self.ykc_check = ykc_check

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
            specs = parse_periods(self.data)
            ykc = bool(self.ykc_check and self.ykc_check(request))
            validate_periods(specs, ykc=ykc)
        except PriceTemplateError as exc:
            self.errors.extend(exc.messages)  # each problem its own message
            raise StopValidation() from None

    def populate_obj(self, obj, name):
        pass  # the view applies the periods through the service
