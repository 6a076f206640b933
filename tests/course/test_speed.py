"""course_utils.course.speed: notebook 09's speed table: rows, ratios, the table and plot, the stored reference run."""

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_utils.course import speed  # noqa: E402


def test_specs_and_the_table_issue_7_asks_for():
    assert speed.spec("DDIM", 20) == speed.SamplerSpec("DDIM-20", "digits-ddpm", "ddim", 20)
    assert speed.spec("flow Heun", 5).nfe == 9  # Heun: two calls per step but the last
    labels = [s.label for s in speed.TABLE]
    assert labels == ["DDPM-1000", "DDIM-10", "DDIM-20", "DDIM-50", "DPM-Solver++-5", "DPM-Solver++-10",
                      "DPM-Solver++-20", "Euler-Karras-10", "Euler-Karras-20", "Heun-Karras-5", "Heun-Karras-10",
                      "flow Euler-4", "flow Euler-8", "flow Euler-16", "student-1", "student-2", "student-4"]
    # issue 32: every row on a strong unconditional model, so that each can be judged against the data
    assert {s.model for s in speed.TABLE} == {"digits-ddpm", "digits-flow", "digits-student"}
    karras = speed.spec("Heun-Karras", 10)
    assert karras.model == "digits-ddpm" and karras.nfe == 19  # about 20 network calls
    assert dict(karras.options) == {"use_karras_sigmas": True, "sigma_max": 80.0} and speed.spec("DDIM", 5).options == ()
    with pytest.raises(ValueError, match="sampler row must be one of"):
        speed.spec("LCM", 4)
    with pytest.raises(ValueError, match="positive integer"):
        speed.spec("DDIM", 0)


@pytest.fixture(scope="module")
def rows():
    specs = [speed.spec("DDIM", 1), speed.spec("DDIM", 8), speed.spec("flow Euler", 4), speed.spec("student", 1),
             speed.spec("Heun-Karras", 3)]
    return speed.measure(specs, n=12)


def test_measure_times_and_scores_every_row_from_the_same_seed(rows):
    assert [r["label"] for r in rows] == ["DDIM-1", "DDIM-8", "flow Euler-4", "student-1", "Heun-Karras-3"]
    assert rows[-1]["sampler_options"] == {"use_karras_sigmas": True, "sigma_max": 80.0} and rows[-1]["nfe"] == 5
    assert "sampler_options" not in rows[0]
    for r in rows:
        assert r["n"] == 12 and r["seconds"] > 0 and r["samples"].shape == (12, 1, 16, 16)
        assert r["fid_comparable"] is False and r["fid"] > 0
    assert rows[1]["kid"] < rows[0]["kid"]  # 8 DDIM steps beat 1 (a blurry digit) even on 12 digits
    again = speed.measure([speed.spec("DDIM", 1)], n=12)[0]
    assert (again["samples"] == rows[0]["samples"]).all()  # one seed for every row and every run
    with pytest.raises(TypeError, match="SamplerSpec"):
        speed.measure([("DDIM", 2)], n=4)
    with pytest.raises(ValueError, match="at least 2"):
        speed.measure([speed.spec("DDIM", 2)], n=1)


def test_ratios_table_and_plot(rows):
    rel = speed.ratios(rows, "DDIM-8")
    assert rel["DDIM-8"] == 1.0 and rel["DDIM-1"] > 1.0
    with pytest.raises(ValueError, match="no row labelled"):
        speed.ratios(rows, "DDPM-1000")
    table = speed.markdown_table(rows, reference="DDIM-8")
    assert table.splitlines()[0].count("|") == table.splitlines()[2].count("|") == 9
    assert "| DDIM-8 | digits-ddpm |" in table
    assert "biased" in table  # N below 898 is flagged
    ax = speed.plot(rows, key="kid")
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() and ax.get_legend() is not None
    plt.close("all")
    assert speed.within(1.1, 1.0, 1.15) and not speed.within(1.2, 1.0, 1.15)
    assert not speed.within(float("nan"), 1.0, 2.0)


def test_reference_run_round_trips_atomically(tmp_path):
    record = {"device": "test", "torch": "x", "date": "2026-11-26", "n": 12, "rows": [{"label": "DDIM-2"}]}
    path = speed.write_reference(record, tmp_path / "speed_table.json")
    assert json.loads(path.read_text()) == record and list(tmp_path.iterdir()) == [path]
    with pytest.raises(ValueError, match="needs device"):
        speed.write_reference({"rows": []}, tmp_path / "bad.json")


def test_the_shipped_reference_holds_every_row_of_the_table():
    ref = speed.reference_table()
    assert [r["label"] for r in ref["rows"]] == [s.label for s in speed.TABLE]
    assert ref["n"] == 898 and all(r["fid_comparable"] for r in ref["rows"])


def test_reference_rows_stand_in_for_slow_ones_and_say_so(rows):
    ref = speed.reference_table()
    (ddpm,) = speed.from_reference(["DDPM-1000"])
    assert ddpm["fid"] == ref["rows"][0]["fid"] and ddpm["source"].startswith("reference run (")
    assert ref["date"] in ddpm["source"]
    table = speed.markdown_table([ddpm] + rows, reference="DDPM-1000")
    assert "| DDPM-1000 † |" in table and "† not run here" in table and "DDIM-2 †" not in table
    ax = speed.plot([ddpm] + rows, key="kid")
    assert "1000 (reference run)" in [t.get_text() for t in ax.texts]
    plt.close("all")
    with pytest.raises(ValueError, match="drew N = 898"):
        speed.from_reference(["DDPM-1000"], n=12)
    with pytest.raises(ValueError, match="no reference row for"):
        speed.from_reference(["DDPM-50"])


def test_the_karras_rows_are_stored_with_their_options_and_a_caveat_is_marked():
    ref = {r["label"]: r for r in speed.reference_table()["rows"]}
    for label in ("Euler-Karras-10", "Euler-Karras-20", "Heun-Karras-5", "Heun-Karras-10"):
        row, spec = ref[label], next(s for s in speed.TABLE if s.label == label)
        assert row["model"] == spec.model == "digits-ddpm" and row["nfe"] == spec.nfe
        assert row["sampler_options"] == dict(spec.options)
    noted = dict(ref["Heun-Karras-10"], note="measured on another day")
    table = speed.markdown_table([ref["DDPM-1000"], noted], reference="DDPM-1000")
    assert "| Heun-Karras-10 ‡ | digits-ddpm | 19 |" in table and table.count("\n‡ measured on another day") == 1
