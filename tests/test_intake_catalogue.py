"""Intake factor catalogue, unit conversion, intake entry validation and Cronometer import."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboards.catalogue import (
    BUILTIN_FACTORS,
    UNITS,
    Catalogue,
    Factor,
    IntakeError,
    convert,
    lookup_unit,
    make_custom_factor,
    normalise_name,
    parse_amount,
)
from dashboards.intake import (
    SCHEMA,
    IntakeEntry,
    entry_from_payload,
    read_cronometer_daily,
    stable_entry_id,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def entry(
    payload: dict | str | bytes, catalogue: Catalogue | None = None, **options
) -> IntakeEntry:
    options.setdefault("source", "api")
    options.setdefault("now", NOW)
    return entry_from_payload(payload, catalogue or Catalogue(), **options)


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(IntakeError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# --- units ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (1, "fl oz", "mL", 29.5735),
        (1, "g", "mg", 1000),
        (1, "h", "min", 60),
        (1, "L", "mL", 1000),
        (1, "cup", "mL", 240),
        (1, "cL", "mL", 10),
        (1, "dL", "mL", 100),
        (1, "kg", "g", 1000),
        (1000, "mcg", "mg", 1),
        (500, "µg", "mg", 0.5),  # micro sign
        (500, "μg", "mg", 0.5),  # Greek mu
        (500, "ug", "mg", 0.5),
        (90, "s", "min", 1.5),
        (2, "tablets", "dose", 2),
        (1.1, "g", "mg", 1100),  # tidy: not 1100.0000000000002
    ],
)
def test_conversions_match_hand_values(value, source, target, expected) -> None:
    assert convert(value, source, target) == pytest.approx(expected, abs=1e-4)
    if source == "g" and value == 1.1:
        assert convert(value, source, target) == 1100.0


def test_unit_spellings_are_case_insensitive() -> None:
    assert lookup_unit("ml").symbol == "mL"
    assert lookup_unit("ML").symbol == "mL"
    assert lookup_unit("Litres").symbol == "L"
    assert lookup_unit("fl. oz").symbol == "fl oz"
    assert lookup_unit("hrs").symbol == "h"


def test_conversion_across_dimensions_is_refused_with_both_named() -> None:
    message = error_of(convert, 1, "g", "mL")
    assert "g (mass)" in message and "mL (volume)" in message


def test_unknown_and_ambiguous_units_say_what_is_known() -> None:
    assert "unknown unit 'furlong'" in error_of(lookup_unit, "furlong")
    assert "mg" in error_of(lookup_unit, "furlong")
    assert "fl oz" in error_of(lookup_unit, "oz")


@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.sampled_from(
        [(a.symbol, b.symbol) for a in UNITS for b in UNITS if a.dimension == b.dimension]
    ),
)
def test_conversion_there_and_back_returns_the_value(value: float, pair: tuple[str, str]) -> None:
    there = convert(value, *pair)
    assert convert(there, pair[1], pair[0]) == pytest.approx(value, rel=1e-9, abs=1e-9)


# --- parse_amount -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250mg", (250.0, "mg")),
        ("250 mg", (250.0, "mg")),
        ("1.5 L", (1.5, "L")),
        ("2", (2.0, None)),
        ("  8   fl oz ", (8.0, "fl oz")),
        (".5g", (0.5, "g")),
        ("1e3 mL", (1000.0, "mL")),
        ("0", (0.0, None)),
    ],
)
def test_parse_amount_splits_number_and_unit(text: str, expected) -> None:
    assert parse_amount(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5 mg", "negative"),
        ("nan", "not a finite number"),
        ("inf mg", "not a finite number"),
        ("-Infinity", "not a finite number"),
        ("1,5 L", "use a dot for decimals"),
        ("1,500 mL", "no thousands separators"),
        ("abc", "does not start with a number"),
        ("mg 250", "does not start with a number"),
    ],
)
def test_parse_amount_errors_name_the_problem(text: str, words: str) -> None:
    assert words in error_of(parse_amount, text)


def test_parse_amount_rejects_non_text() -> None:
    assert "must be text" in error_of(parse_amount, 250)


# --- factors ----------------------------------------------------------------------------------------


def test_factor_parse_gives_canonical_amounts() -> None:
    catalogue = Catalogue()
    assert catalogue.get("water").parse("1.5 L") == 1500
    assert catalogue.get("water").parse("8 fl oz") == pytest.approx(236.588, abs=1e-3)
    assert catalogue.get("water").parse("2 cups") == 480
    assert catalogue.get("magnesium").parse("0.4 g") == 400
    assert catalogue.get("magnesium").parse("250") == 250  # no unit: canonical
    assert catalogue.get("vitamin_b6").parse("500 mcg") == 0.5
    assert catalogue.get("exercise").parse("1.5 h") == 90
    assert catalogue.get("exercise").parse("90 s") == 1.5
    assert catalogue.get("diuretic").parse("40 mg") == 40


def test_alcohol_is_grams_of_ethanol_and_drinks_are_explicit() -> None:
    alcohol = Catalogue().get("alcohol")
    assert alcohol.unit == "g"
    assert alcohol.parse("2 drinks") == 20
    assert alcohol.parse("1 drink") == 10
    assert alcohol.parse("1 standard drink") == 10
    assert alcohol.parse("1 US drink") == 14
    assert alcohol.parse("3 uk units") == 24
    message = error_of(alcohol.parse, "330 mL")
    assert "alcohol is measured in g" in message
    assert "'330 mL' is a volume" in message
    assert "drink" in message and "ethanol" in message


def test_wrong_dimension_message_says_what_to_give() -> None:
    message = error_of(Catalogue().get("magnesium").parse, "250 mL")
    assert message.startswith("magnesium is measured in mg; '250 mL' is a volume: give mg, g, mcg")


def test_medication_is_counted_in_doses_not_mg() -> None:
    medication = Catalogue().get("medication")
    assert medication.kind == "event"
    assert medication.parse("2 tablets") == 2
    message = error_of(medication.parse, "500 mg")
    assert "counted in doses" in message and "is a mass" in message
    assert "its own name" in message


def test_unknown_and_ambiguous_units_for_a_factor_list_the_allowed_ones() -> None:
    water = Catalogue().get("water")
    assert water.parse("2 glasses") == 500  # a household measure of water
    assert "unknown unit 'buckets'; give mL, L" in error_of(water.parse, "2 buckets")
    message = error_of(water.parse, "8 oz")
    assert "ambiguous" in message and "fl oz" in message


@pytest.mark.parametrize(
    ("factor", "text", "words"),
    [
        ("water", "21 L", "'21 L' is 21000 mL, more than the 20000 mL allowed in one entry"),
        ("magnesium", "6 g", "'6 g' is 6000 mg, more than the 5000 mg allowed"),
        ("magnesium", "6000", "magnesium: 6000 mg is more than the 5000 mg allowed"),
        ("exercise", "25 h", "more than the 1440 min allowed"),
        ("alcohol", "60 drinks", "'60 drinks' is 600 g, more than the 500 g allowed"),
    ],
)
def test_absurd_amounts_are_refused_with_the_bound(factor: str, text: str, words: str) -> None:
    assert words in error_of(Catalogue().get(factor).parse, text)


def test_to_canonical_checks_numbers_from_json() -> None:
    water = Catalogue().get("water")
    assert "not a finite number" in error_of(water.to_canonical, math.nan, "mL")
    assert "not a finite number" in error_of(water.to_canonical, math.inf)
    assert "negative" in error_of(water.to_canonical, -1, "mL")
    assert "not a number" in error_of(water.to_canonical, True)
    assert "not a number" in error_of(water.to_canonical, "250")


def _unit_cases() -> list[tuple[Factor, str]]:
    return [(f, u) for f in BUILTIN_FACTORS for u in f.allowed_units()]


@settings(max_examples=300)
@given(st.sampled_from(_unit_cases()), st.floats(min_value=0, max_value=1, allow_nan=False))
def test_parse_to_canonical_round_trip(case: tuple[Factor, str], fraction: float) -> None:
    factor, unit = case
    size = {m.name: m.size for m in factor.measures()}.get(unit) or lookup_unit(
        unit
    ).scale / lookup_unit(factor.unit).scale
    value = float(f"{fraction * factor.max_amount / size:.6g}")
    if value * size > factor.max_amount:
        return
    canonical = factor.parse(f"{value!r} {unit}")
    assert canonical == pytest.approx(value * size, rel=1e-9)
    # The canonical amount, written in the canonical unit or with none, reads back unchanged.
    assert factor.parse(f"{canonical!r} {factor.unit}") == canonical
    assert factor.parse(repr(canonical)) == canonical


# --- catalogue --------------------------------------------------------------------------------------


def test_builtin_factors_have_the_designed_units_and_kinds() -> None:
    units = {f.key: (f.unit, f.kind) for f in BUILTIN_FACTORS}
    assert units == {
        "water": ("mL", "amount"),
        "magnesium": ("mg", "amount"),
        "potassium": ("mg", "amount"),
        "calcium": ("mg", "amount"),
        "sodium": ("mg", "amount"),
        "vitamin_e": ("mg", "amount"),
        "vitamin_b6": ("mg", "amount"),
        "caffeine": ("mg", "amount"),
        "alcohol": ("g", "amount"),
        "exercise": ("min", "amount"),
        "diuretic": ("mg", "amount"),
        "medication": ("dose", "event"),
        "phosphate_binder": ("dose", "event"),
        "dialysis": ("mL", "event"),
    }
    for factor in BUILTIN_FACTORS:
        assert math.isfinite(factor.max_amount) and factor.max_amount > 0
        assert all(0 <= q.amount <= factor.max_amount for q in factor.quick_adds)
        json.dumps(factor.to_dict())


def test_aliases_find_factors_in_any_spelling() -> None:
    catalogue = Catalogue()
    assert catalogue.get("Mg").key == "magnesium"
    assert catalogue.get("MAGNESIUM").key == "magnesium"
    assert catalogue.get("Vitamin E").key == "vitamin_e"
    assert catalogue.get("vitamin-b6").key == "vitamin_b6"
    assert catalogue.get("B6").key == "vitamin_b6"
    assert catalogue.get("haemodialysis").key == "dialysis"
    assert "K" in catalogue and "nonsense" not in catalogue
    assert "unknown factor 'nonsense'" in error_of(catalogue.get, "nonsense")


def test_custom_factor_takes_the_unit_given_or_count() -> None:
    catalogue = Catalogue()
    pickle = catalogue.resolve("Pickle Juice", "ml")
    assert (pickle.key, pickle.unit, pickle.custom) == ("pickle_juice", "mL", True)
    assert pickle.parse("1 fl oz") == pytest.approx(29.5735, abs=1e-4)
    stretches = catalogue.resolve("calf-stretches")
    assert (stretches.key, stretches.unit) == ("calf_stretches", "count")
    assert pickle not in catalogue.custom_factors()  # resolve does not register


@pytest.mark.parametrize("name", ["", "   ", "a" * 41, "pickle!", "42", "<script>"])
def test_bad_custom_names_say_what_is_allowed(name: str) -> None:
    assert "letters, digits" in error_of(make_custom_factor, name)


def test_custom_factor_with_an_unknown_unit_is_refused() -> None:
    assert "unknown unit 'slices'" in error_of(make_custom_factor, "toast", "slices")


def test_custom_factors_persist_and_reload() -> None:
    catalogue = Catalogue()
    catalogue.register(catalogue.resolve("Pickle Juice", "mL"))
    catalogue.register(catalogue.resolve("gabapentin", "mg"))
    records = json.loads(json.dumps(catalogue.custom_records()))
    reloaded = Catalogue(custom=records)
    assert reloaded.custom_factors() == catalogue.custom_factors()
    assert reloaded.get("pickle juice").unit == "mL"
    assert len(reloaded) == len(BUILTIN_FACTORS) + 2


def test_registering_is_idempotent_and_clashes_are_refused() -> None:
    catalogue = Catalogue()
    first = catalogue.register(make_custom_factor("pickle juice", "mL"))
    assert catalogue.register(make_custom_factor("pickle_juice", "mL")) is first
    assert "clashes" in error_of(catalogue.register, make_custom_factor("pickle juice", "g"))
    assert "clashes" in error_of(catalogue.register, make_custom_factor("mg", "mg"))
    assert "not a custom factor" in error_of(catalogue.register, BUILTIN_FACTORS[0])
    assert "bad custom factor record" in error_of(Catalogue, custom=[{"unit": "mL"}])


def test_names_normalise_to_lowercase_underscores() -> None:
    assert normalise_name("  Calf -  Stretches ") == "calf_stretches"


# --- intake entries ---------------------------------------------------------------------------------

GOOD = {"time": "2026-03-01T08:00:00+01:00", "factor": "magnesium", "amount": 250, "unit": "mg"}


def test_entry_from_a_dict_is_canonical_and_utc() -> None:
    result = entry({**GOOD, "amount": "0.4", "unit": "g", "note": "with dinner"}, source="form")
    assert result.factor == "magnesium" and result.amount == 400 and result.unit == "mg"
    assert result.time == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    assert result.to_dict() == {
        "schema": SCHEMA,
        "entry_id": result.entry_id,
        "time": "2026-03-01T07:00:00.000Z",
        "factor": "magnesium",
        "amount": 400.0,
        "unit": "mg",
        "note": "with dinner",
        "source": "form",
    }


def test_entry_from_json_text_and_bytes_and_amount_strings() -> None:
    text = json.dumps({"time": "2026-03-01T07:00:00Z", "factor": "water", "amount": "1.5 L"})
    assert entry(text).amount == 1500
    assert entry(text.encode()).amount == 1500
    assert entry({**GOOD, "amount": "250mg", "unit": None}).amount == 250
    assert entry({**GOOD, "amount": "0.25 g", "unit": "gram"}).amount == 250


def test_round_trip_through_json_keeps_the_entry() -> None:
    catalogue = Catalogue()
    first = entry({**GOOD, "note": "<b>plain</b> & text", "time": "2026-03-01T08:00:00.123456"},
                  catalogue, local_tz=BERLIN)  # fmt: skip
    assert first.note == "<b>plain</b> & text"  # stored as given: escaping is the UI's job
    assert entry(first.to_json(), catalogue) == first
    relayed = entry(first.to_json(), catalogue, source="mqtt")  # a `source` field is ignored
    assert relayed.source == "mqtt" and relayed.entry_id == first.entry_id


def test_stable_ids_same_entry_twice_same_id() -> None:
    payload = {**GOOD, "note": "evening"}
    assert entry(payload).entry_id == entry(dict(payload)).entry_id
    assert entry(payload).entry_id == entry({**payload, "amount": "0.25 g", "unit": None}).entry_id
    assert entry(payload).entry_id != entry({**payload, "note": "morning"}).entry_id
    assert entry(payload).entry_id != entry(payload, source="mqtt").entry_id
    assert entry({**payload, "entry_id": "form-7f3a"}).entry_id == "form-7f3a"
    assert len(entry(payload).entry_id) == 32


def test_naive_time_is_read_in_the_local_zone() -> None:
    result = entry({**GOOD, "time": "2026-03-01T08:00"}, local_tz="Europe/Berlin")
    assert result.time == datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    assert result.local_date("Europe/Berlin").isoformat() == "2026-03-01"


def test_time_may_be_left_out_except_over_mqtt() -> None:
    payload = {"factor": "water", "amount": 250, "unit": "mL"}
    assert entry(payload, source="form").time == NOW
    assert entry(payload, source="api").time == NOW
    assert "time is missing" in error_of(entry, payload, source="mqtt")


def test_events_may_be_logged_without_an_amount() -> None:
    dialysis = entry({"time": "2026-03-01T07:00:00Z", "factor": "dialysis"})
    assert (dialysis.amount, dialysis.unit) == (0.0, "mL")
    with_uf = entry({"time": "2026-03-01T07:00:00Z", "factor": "dialysis", "amount": "2.1 L"})
    assert with_uf.amount == 2100
    medication = entry({"time": "2026-03-01T07:00:00Z", "factor": "meds"})
    assert (medication.factor, medication.amount, medication.unit) == ("medication", 1.0, "dose")


def test_new_custom_factor_is_registered_only_when_the_entry_is_valid() -> None:
    catalogue = Catalogue()
    bad = {"time": "2031-01-01T00:00:00Z", "factor": "Pickle Juice", "amount": "60 mL"}
    error_of(entry, bad, catalogue)
    assert catalogue.custom_factors() == ()
    good = entry({**bad, "time": "2026-03-01T07:00:00Z"}, catalogue)
    assert (good.factor, good.amount, good.unit) == ("pickle_juice", 60.0, "mL")
    assert [f.key for f in catalogue.custom_factors()] == ["pickle_juice"]
    later = entry({**bad, "time": "2026-03-01T07:00:00Z", "amount": "0.1 L"}, catalogue)
    assert (later.amount, later.unit) == (100.0, "mL")
    wrong_unit = {**bad, "time": "2026-03-01T07:00:00Z", "amount": "2 g"}
    assert "is measured in mL" in error_of(entry, wrong_unit, catalogue)
    counted = entry(
        {"time": "2026-03-01T07:00:00Z", "factor": "stretches", "amount": 3}, Catalogue()
    )
    assert counted.unit == "count"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"\xff\xfe", "not UTF-8"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("x" * 9000, "more than 8192 bytes"),
        (
            {**GOOD, "schema": "crampwatch.intake/2"},
            "schema 'crampwatch.intake/2' is not supported",
        ),
        ({**GOOD, "ammount": 5}, "unknown field(s) ammount"),
        ({**GOOD, "time": "2026-03-01T08:00"}, "has no timezone"),
        ({**GOOD, "time": "2026-03-01"}, "is a date only"),
        ({**GOOD, "time": "yesterday"}, "is not ISO 8601"),
        ({**GOOD, "time": 1_700_000_000}, "time must be ISO 8601 text"),
        ({**GOOD, "time": "2026-03-02T13:00:00Z"}, "more than a day in the future"),
        ({**GOOD, "time": "1999-12-31T23:59:59Z"}, "before 2000"),
        ({**GOOD, "factor": None}, "factor is missing"),
        ({**GOOD, "factor": "   "}, "factor is missing"),
        ({**GOOD, "factor": "pickle!"}, "is not allowed"),
        ({**GOOD, "factor": 7}, "factor must be a name"),
        ({**GOOD, "amount": None}, "amount is missing"),
        ({**GOOD, "amount": "-3"}, "negative"),
        ({**GOOD, "amount": float("nan")}, "not a finite number"),
        ({**GOOD, "amount": [250]}, "not a number"),
        ({**GOOD, "amount": "250 mg", "unit": "g"}, "disagrees with unit 'g'"),
        ({**GOOD, "unit": "mL"}, "'250 mL' is a volume"),
        ({**GOOD, "unit": 5}, "unit must be text"),
        ({**GOOD, "amount": "", "unit": "mg"}, "amount is missing"),
        ({**GOOD, "amount": 6, "unit": "g"}, "more than the 5000 mg allowed"),
        ({**GOOD, "note": "x" * 501}, "at most 500"),
        ({**GOOD, "note": "bell\x07"}, "control characters"),
        ({**GOOD, "note": 5}, "note must be text"),
        ({**GOOD, "entry_id": "has space"}, "entry_id 'has space' is not allowed"),
        ({**GOOD, "entry_id": ""}, "is not allowed"),
    ],
)
def test_every_bad_payload_gets_a_message_naming_the_problem(payload, words: str) -> None:
    assert words in error_of(entry, payload)


def test_nan_in_json_text_is_refused() -> None:
    text = '{"time": "2026-03-01T07:00:00Z", "factor": "water", "amount": NaN}'
    assert "not a finite number" in error_of(entry, text)


def test_bad_source_and_bad_zone_are_refused() -> None:
    assert "source 'carrier pigeon'" in error_of(entry, GOOD, source="carrier pigeon")
    message = error_of(entry, {**GOOD, "time": "2026-03-01T08:00"}, local_tz="Mars/Olympus")
    assert "unknown time zone" in message


def test_note_keeps_newlines_and_is_trimmed() -> None:
    assert entry({**GOOD, "note": "  line one\r\nline two  "}).note == "line one\nline two"
    assert entry({**GOOD, "note": "x" * 500}).note == "x" * 500


def test_entry_requires_an_aware_time() -> None:
    assert "timezone" in error_of(IntakeEntry, "id", datetime(2026, 1, 1), "water", 1.0, "mL")


_FACTOR_KEYS = [f.key for f in BUILTIN_FACTORS]


@settings(max_examples=150)
@given(
    key=st.sampled_from(_FACTOR_KEYS),
    fraction=st.floats(min_value=0, max_value=1),
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2026, 3, 2), timezones=st.just(UTC)
    ),
    note=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=500),
)
def test_any_valid_entry_survives_json(key: str, fraction: float, moment: datetime, note: str):
    catalogue = Catalogue()
    factor = catalogue.get(key)
    payload = {
        "time": moment.isoformat(),
        "factor": key,
        "amount": fraction * factor.max_amount,
        "unit": factor.unit,
        "note": note,
    }
    first = entry(payload, catalogue)
    assert first.time <= moment and moment - first.time < timedelta(milliseconds=1)
    again = entry(json.loads(first.to_json()), catalogue)
    assert again == first
    assert entry(payload, catalogue).entry_id == first.entry_id


def test_stable_entry_id_depends_only_on_its_parts() -> None:
    assert stable_entry_id("2026-01-01", "water", "cronometer") == stable_entry_id(
        "2026-01-01", "water", "cronometer"
    )
    assert stable_entry_id("a", "b") != stable_entry_id("a", "c")


# --- Cronometer import ------------------------------------------------------------------------------

DAILY = (
    "\ufeffDate,Energy (kcal),Alcohol (g),Caffeine (mg),Water (g),B6 (Pyridoxine) (mg),"
    "B12 (Cobalamin) (µg),Vitamin E (mg),Calcium (mg),Iron (mg),Magnesium (mg),Potassium (mg),"
    "Sodium (mg),Protein (g),Completed\n"
    "2026-02-10,2712.4,0.0,95.0,2100.3,1.7,4.1,12.5,980,9,320.5,3100,2300,158.3,true\n"
    "2026-02-11,1500,14,,1800,,,,,,250,,,80,false\n"
    "\n"
    "2026-02-12,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,false\n"
)


def import_daily(text: str, **options) -> list[IntakeEntry]:
    options.setdefault("now", NOW)
    return read_cronometer_daily(io.StringIO(text), Catalogue(), "Europe/Berlin", **options)


def test_cronometer_daily_export_becomes_one_entry_per_day_and_factor() -> None:
    entries = import_daily(DAILY)
    by_day = {(e.local_date(BERLIN).isoformat(), e.factor): e for e in entries}
    nutrients = {"alcohol", "caffeine", "water", "vitamin_b6", "vitamin_e", "calcium"}
    nutrients |= {"magnesium", "potassium", "sodium"}
    assert {f for day, f in by_day if day == "2026-02-10"} == nutrients
    assert (
        by_day["2026-02-10", "water"].amount == 2100.3
        and by_day["2026-02-10", "water"].unit == "mL"
    )
    assert by_day["2026-02-10", "alcohol"].amount == 0.0  # a 0 on a logged day is kept
    assert by_day["2026-02-10", "vitamin_b6"].amount == 1.7
    # Empty cells are skipped; an empty diary day (all zero) gives nothing.
    assert {f for day, f in by_day if day == "2026-02-11"} == {"alcohol", "water", "magnesium"}
    assert not any(day == "2026-02-12" for day, _ in by_day)
    first = by_day["2026-02-10", "magnesium"]
    assert first.time == datetime(2026, 2, 10, 12, 0, tzinfo=BERLIN)
    assert (first.source, first.note) == ("cronometer", "Cronometer daily total")
    assert by_day["2026-02-11", "water"].note.endswith("(day not marked complete)")
    assert first.entry_id == stable_entry_id("2026-02-10", "magnesium", "cronometer")
    assert [e.time for e in entries] == sorted(e.time for e in entries)


def test_reimporting_an_updated_export_gives_the_same_ids() -> None:
    before = {(e.entry_id, e.amount) for e in import_daily(DAILY) if e.factor == "magnesium"}
    updated = DAILY.replace(",320.5,", ",400,")
    after = {(e.entry_id, e.amount) for e in import_daily(updated) if e.factor == "magnesium"}
    assert {i for i, _ in before} == {i for i, _ in after}
    assert (400.0 in {a for _, a in after}) and (320.5 not in {a for _, a in after})


def test_cronometer_import_reads_paths_and_byte_streams(tmp_path: Path) -> None:
    path = tmp_path / "dailysummary.csv"
    path.write_bytes(DAILY.encode("utf-8"))
    from_path = read_cronometer_daily(path, Catalogue(), BERLIN, now=NOW)
    from_str_path = read_cronometer_daily(str(path), Catalogue(), BERLIN, now=NOW)
    from_bytes = read_cronometer_daily(io.BytesIO(path.read_bytes()), Catalogue(), BERLIN, now=NOW)
    from_text = read_cronometer_daily(DAILY, Catalogue(), BERLIN, now=NOW)
    assert from_path == from_str_path == from_bytes == from_text == import_daily(DAILY)
    missing = error_of(read_cronometer_daily, tmp_path / "nope.csv", Catalogue(), BERLIN)
    assert "cannot read the file" in missing and "nope.csv" in missing


def test_cronometer_import_can_leave_factors_out() -> None:
    entries = import_daily(DAILY, factors=["magnesium", "Mg", "potassium"])
    assert {e.factor for e in entries} == {"magnesium", "potassium"}
    assert "unknown factor" in error_of(import_daily, DAILY, factors=["unobtainium"])


def test_cronometer_units_in_headers_are_converted() -> None:
    text = "Date,Water (L),Magnesium (g),Calcium (µg)\n2026-02-10,2.5,0.3,500000\n"
    amounts = {e.factor: (e.amount, e.unit) for e in import_daily(text)}
    assert amounts == {
        "water": (2500.0, "mL"),
        "magnesium": (300.0, "mg"),
        "calcium": (500.0, "mg"),
    }
    message = error_of(import_daily, "Date,Vitamin E (IU)\n2026-02-10,30\n")
    assert "column 'Vitamin E (IU)'" in message and "unknown unit 'IU'" in message


def test_messy_rows_are_reported_by_line_and_column_and_nothing_is_imported() -> None:
    text = (
        "Date,Energy (kcal),Water (g),Magnesium (mg)\n"
        "2026-02-10,2000,abc,300\n"
        "10/02/2026,2000,1000,300\n"
        "2026-02-11,2000,1000\n"
        "2026-02-10,2000,1000,300\n"
        "2026-02-12,2000,1000,9000\n"
        "2026-02-13,2000,-5,300\n"
        "2031-01-01,2000,1000,300\n"
        '2026-02-14,2000,"1,000",300\n'
    )
    message = error_of(import_daily, text)
    assert "nothing was imported" in message
    assert "line 2: column 'Water (g)': 'abc' is not a number" in message
    assert "line 3: column 'Date': '10/02/2026' is not a date like" in message
    assert "line 4: expected 4 columns, found 3" in message
    assert "line 5: date 2026-02-10 appears twice (first on line 2)" in message
    assert "line 6: column 'Magnesium (mg)'" in message and "5000 mg allowed" in message
    assert "line 7: column 'Water (g)': '-5' is not a finite number 0 or more" in message
    assert "line 8:" in message and "future" in message
    assert "line 9: column 'Water (g)': '1,000' is not a number" in message


def test_many_problems_are_cut_short() -> None:
    rows = "".join(f"2026-01-{day:02d},x\n" for day in range(1, 21))
    message = error_of(import_daily, "Date,Water (g)\n" + rows)
    assert "line 11:" in message and "line 12:" not in message and "and 10 more" in message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "the file is empty"),
        ("Name,Weight (kg)\nx,70\n", "no 'Date' column. Expected columns such as Date, Water (g)"),
        (
            "Day,Time,Group,Food Name,Amount,Energy (kcal)\n2026-02-10,,Breakfast,Oats,1,300\n",
            "Servings export",
        ),
        ("Date,Energy (kcal),Protein (g)\n2026-02-10,2000,80\n", "no column to import"),
        ("Date,Water (g),Water (g)\n2026-02-10,1,2\n", "a second column for water"),
    ],
)
def test_files_that_are_not_daily_exports_say_what_was_expected(text: str, words: str) -> None:
    assert words in error_of(import_daily, text)


def test_cronometer_accepts_a_day_column_and_windows_1252_bytes() -> None:
    text = "Day,Calcium (µg)\n2026-02-10,500000\n"
    entries = read_cronometer_daily(io.BytesIO(text.encode("cp1252")), Catalogue(), "UTC", now=NOW)
    assert [(e.factor, e.amount) for e in entries] == [("calcium", 500.0)]
