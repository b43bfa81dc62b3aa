"""The Chinese catalogue covers every msgid in the code, with nothing fuzzy or empty."""
import os
import subprocess
import sys

from babel.messages.pofile import read_po

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PO = os.path.join(ROOT, "app", "translations", "zh", "LC_MESSAGES", "messages.po")


def test_catalogue_is_complete(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k",
                    "lazy_gettext", "-k", "_l", "-k", "N_", "-o", str(pot), "."], cwd=ROOT, check=True,
                   capture_output=True)
    with open(pot, "rb") as fh:
        wanted = {m.id for m in read_po(fh) if m.id}
    with open(PO, "rb") as fh:
        catalog = read_po(fh)
    have = {m.id: m for m in catalog if m.id}
    missing = sorted(wanted - set(have))
    assert not missing, f"msgids without a Chinese translation (run pybabel update): {missing[:20]}"
    assert not [m.id for m in have.values() if not m.string], "empty translations"
    assert not [m.id for m in have.values() if m.fuzzy], "fuzzy translations"
    from babel.messages.mofile import read_mo

    with open(PO.replace(".po", ".mo"), "rb") as fh:
        compiled = {m.id: m.string for m in read_mo(fh) if m.id}
    stale = [i for i, m in have.items() if compiled.get(i) != m.string]
    assert not stale, f"messages.mo is out of date (run pybabel compile): {stale[:5]}"
