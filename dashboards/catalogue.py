"""The intake factor catalogue: what can be logged, in which canonical unit, and unit conversion.

Every intake amount is stored in its factor's canonical unit (DESIGN.md, "Intake entry"), so that the
dashboard can total a day by plain addition. Conversion happens only within one dimension (mass, volume,
time, count); anything else is an `IntakeError` whose message says what was wrong and what is allowed.

Choices worth knowing:
- Alcohol is counted in grams of ethanol. "drink" means a standard drink of 10 g (WHO, Australia);
  because that differs by country, "us drink" (14 g) and "uk unit" (8 g) can be given instead. A volume
  (330 mL of beer) is refused: it says nothing about the ethanol in it.
- Water is a volume (mL). 1 cup is 240 mL (US nutrition labelling), 1 fl oz is a US fluid ounce
  (29.5735 mL); a bare "oz" is refused as ambiguous (mass or volume).
- "medication" is counted in doses and is an event (taken / not taken): milligrams of different drugs
  cannot be added up. A drug worth tracking by dose is best logged as its own (custom) factor in mg.
- "diuretic" is in mg (e.g. furosemide); amounts only compare within one drug.
- "dialysis" is an event whose amount is the ultrafiltration volume in mL; a session logged with 0 mL
  (or without an amount) still counts as a session. A session's details (weights, ultrafiltration,
  dialysate sodium, blood pressure) are logged with the session itself (`dashboards.dialysis`).
- "phosphate_binder" (sevelamer, calcium acetate, lanthanum, ...) is an event counted in doses, like
  medication: taken with meals, it is a factor nephrologists adjust.
- A name that is not in the catalogue becomes a custom factor whose canonical unit is the unit given
  with it ("count" without one). Custom factors live in a `Catalogue`, which can list them for storage.
  A name close to a known one ("magnesum") is refused with "did you mean magnesium?" unless it is
  confirmed as a new factor: a typo must not start a factor of its own.
- Household measures are a factor's own units: a glass of water is 250 mL, a bottle 500 mL, a can
  330 mL; some apply only under the name a factor is logged by (coffee, tea, espresso and cola are
  caffeine: a cup of coffee 95 mg, a cup of tea 47 mg, an espresso 63 mg, a can of cola 34 mg;
  USDA FoodData Central figures). A supplement tablet's content varies, so a tablet is not a
  measure of magnesium, potassium or calcium: the mg on the label is asked for instead.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MASS, VOLUME, TIME, COUNT = "mass", "volume", "time", "count"
AMOUNT, EVENT = "amount", "event"
KINDS = (AMOUNT, EVENT)
CUSTOM_NAME_MAX = 40
SIGNIFICANT_DIGITS = 10

# Per-entry upper bound for custom factors, in the base unit of each dimension (mg, mL, min, count).
CUSTOM_MAX_BY_DIMENSION = {MASS: 10_000_000.0, VOLUME: 20_000.0, TIME: 1440.0, COUNT: 1000.0}


class IntakeError(ValueError):
    """An intake entry, amount, unit or import that is not acceptable; the message says why."""


class UnknownFactorError(IntakeError):
    """A factor name that is not known but close to known ones (`suggestions`, factor keys)."""

    def __init__(self, message: str, suggestions: tuple[str, ...]) -> None:
        super().__init__(message)
        self.suggestions = suggestions


@dataclass(frozen=True)
class Measure:
    """A factor's own unit: `size` canonical units per `name` ('glass' of water is 250 mL;
    'drinks' and 'glasses' are read too). With `when_named`, it applies only when the factor is
    logged under that name: a 'cup' of coffee is 95 mg of caffeine, a 'cup' of tea 47 mg."""

    name: str
    size: float
    when_named: str = ""

    def applies(self, named: str | None) -> bool:
        return not self.when_named or (
            named is not None and normalise_name(named) == normalise_name(self.when_named)
        )

    def spelt(self, unit: str) -> bool:
        key, own = _unit_key(unit), _unit_key(self.name)
        return key in (own, own + "s", own + "es")


@dataclass(frozen=True)
class Unit:
    """A unit: its symbol, dimension, size in the dimension's base unit, and other spellings."""

    symbol: str
    dimension: str
    scale: float
    names: tuple[str, ...] = ()


# Base units: mass mg, volume mL, time min, count 1.
UNITS: tuple[Unit, ...] = (
    Unit("mg", MASS, 1.0, ("milligram", "milligrams")),
    Unit("g", MASS, 1_000.0, ("gram", "grams")),
    Unit("mcg", MASS, 0.001, ("µg", "μg", "ug", "microgram", "micrograms")),
    Unit("kg", MASS, 1_000_000.0, ("kilogram", "kilograms")),
    Unit("mL", VOLUME, 1.0, ("millilitre", "millilitres", "milliliter", "milliliters", "cc")),
    Unit("L", VOLUME, 1_000.0, ("litre", "litres", "liter", "liters")),
    Unit("cL", VOLUME, 10.0, ("centilitre", "centilitres", "centiliter", "centiliters")),
    Unit("dL", VOLUME, 100.0, ("decilitre", "decilitres", "deciliter", "deciliters")),
    Unit(
        "fl oz", VOLUME, 29.5735295625, ("floz", "fl. oz", "fl.oz", "fluid ounce", "fluid ounces")
    ),
    Unit("cup", VOLUME, 240.0, ("cups",)),
    Unit("min", TIME, 1.0, ("mins", "minute", "minutes")),
    Unit("h", TIME, 60.0, ("hr", "hrs", "hour", "hours")),
    Unit("s", TIME, 1.0 / 60.0, ("sec", "secs", "second", "seconds")),
    Unit("count", COUNT, 1.0, ("x", "times", "each")),
    Unit("dose", COUNT, 1.0, ("doses", "tablet", "tablets", "tab", "tabs", "pill", "pills")),
    Unit("session", COUNT, 1.0, ("sessions",)),
)

HOUSEHOLD_UNITS = ("cup",)  # shown with their size in messages
AMBIGUOUS_UNITS = {
    name: f"{name!r} is ambiguous (an ounce of mass or of volume): use 'fl oz' for a volume, g for a mass"
    for name in ("oz", "ounce", "ounces")
}


def _unit_key(text: str) -> str:
    """A unit spelling folded for lookup: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


_UNITS_BY_NAME: dict[str, Unit] = {
    _unit_key(name): unit for unit in UNITS for name in (unit.symbol, *unit.names)
}
_UNITS_BY_SYMBOL: dict[str, Unit] = {unit.symbol: unit for unit in UNITS}


def known_unit_symbols(dimension: str | None = None) -> tuple[str, ...]:
    """The unit symbols, all or those of one dimension, in table order."""
    return tuple(u.symbol for u in UNITS if dimension is None or u.dimension == dimension)


def lookup_unit(text: str) -> Unit:
    """The unit spelt `text` (case-insensitive, 'ml' == 'mL', 'µg' == 'mcg'), or an IntakeError."""
    key = _unit_key(text)
    if key in AMBIGUOUS_UNITS:
        raise IntakeError(AMBIGUOUS_UNITS[key])
    unit = _UNITS_BY_NAME.get(key)
    if unit is None:
        raise IntakeError(
            f"unknown unit {text.strip()!r}: known units are {', '.join(known_unit_symbols())}"
        )
    return unit


def lookup_unit_or_none(text: str | None) -> Unit | None:
    """The unit spelt `text`, or None if there is none such (or it is ambiguous)."""
    return _UNITS_BY_NAME.get(_unit_key(text)) if text else None


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """`value` in `from_unit` expressed in `to_unit`; both must have the same dimension."""
    source, target = lookup_unit(from_unit), lookup_unit(to_unit)
    if source.dimension != target.dimension:
        raise IntakeError(
            f"cannot convert {source.symbol} ({source.dimension}) to {target.symbol} "
            f"({target.dimension}): units convert only within one dimension"
        )
    return tidy(value * source.scale / target.scale)


def tidy(value: float) -> float:
    """`value` rounded to 10 significant digits, so that 1.1 g is 1100 mg and not 1100.0000000000002."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def format_number(value: float) -> str:
    """A number for messages: 250, 1.5, 29.5735."""
    return f"{value:.6g}"


MAX_AMOUNT_CHARS = 40
_AMOUNT_PATTERN = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>.*)$"
)
_NON_FINITE_PATTERN = re.compile(r"^[+-]?(nan|inf|infinity)\b", re.IGNORECASE)


def parse_amount(text: str) -> tuple[float, str | None]:
    """Split '250mg', '1.5 L' or '2' into (number, unit text or None); the number must be >= 0.

    The unit is returned as written (trimmed, single spaces): whether it suits a factor is decided by
    `Factor.to_canonical`, which also knows factor-only units such as 'drink'.
    """
    if not isinstance(text, str):
        raise IntakeError(f"amount must be text such as '250 mg', not {type(text).__name__}")
    stripped = " ".join(text.split())
    if not stripped:
        raise IntakeError("amount is empty: give a number and a unit, e.g. '250 mg'")
    if len(stripped) > MAX_AMOUNT_CHARS:
        raise IntakeError(
            f"amount is {len(stripped)} characters long: give a number and a unit of at most "
            f"{MAX_AMOUNT_CHARS} characters, e.g. '250 mg'"
        )
    if "," in stripped:
        raise IntakeError(
            f"amount {stripped!r} has a comma: use a dot for decimals and no thousands "
            "separators, e.g. '1.5 L' or '1500 mL'"
        )
    if _NON_FINITE_PATTERN.match(stripped):
        raise IntakeError(f"amount {stripped!r} is not a finite number")
    match = _AMOUNT_PATTERN.match(stripped)
    if match is None:
        raise IntakeError(
            f"amount {stripped!r} does not start with a number: give a number and a unit, "
            "e.g. '250 mg'"
        )
    value = float(match["number"])
    check_amount_value(value, stripped)
    return value, (match["unit"] or None)


def check_amount_value(value: Any, shown: str | None = None) -> float:
    """`value` as a float if it is a finite, non-negative real number; else an IntakeError."""
    shown = shown if shown is not None else repr(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IntakeError(f"amount {shown} is not a number")
    value = float(value) + 0.0  # -0.0 becomes 0.0
    if not math.isfinite(value):
        raise IntakeError(f"amount {shown} is not a finite number")
    if value < 0:
        raise IntakeError(f"amount {shown} is negative: amounts must be 0 or more")
    return value


@dataclass(frozen=True)
class QuickAdd:
    """A one-tap button: a label and an amount in the factor's canonical unit."""

    label: str
    amount: float


@dataclass(frozen=True)
class Factor:
    """Something that can be logged: key, label, canonical unit, kind and entry rules.

    `kind` is "amount" (correlated by quantity) or "event" (taken / not taken, the amount is detail).
    `extra_units` are the factor's own units (household measures, standard drinks), as Measures.
    `max_amount` is the sanity bound for one entry, in canonical units.
    `default_amount` is used when an event is logged without an amount (None: amount required).
    """

    key: str
    label: str
    unit: str
    kind: str = AMOUNT
    aliases: tuple[str, ...] = ()
    quick_adds: tuple[QuickAdd, ...] = ()
    max_amount: float = math.inf
    extra_units: tuple[Measure, ...] = ()
    default_amount: float | None = None
    unit_hint: str = ""
    description: str = ""
    custom: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"factor {self.key}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.unit not in _UNITS_BY_SYMBOL:
            raise ValueError(f"factor {self.key}: canonical unit {self.unit!r} is not in UNITS")

    @property
    def dimension(self) -> str:
        """mass, volume, time or count: the dimension of the canonical unit."""
        return _UNITS_BY_SYMBOL[self.unit].dimension

    def allowed_units(self, named: str | None = None) -> tuple[str, ...]:
        """Units accepted for this factor (logged under the name `named`), canonical first,
        then the factor's own measures."""
        same_dimension = [s for s in known_unit_symbols(self.dimension) if s != self.unit]
        own = [m.name for m in self.measures(named)]
        return (self.unit, *[u for u in same_dimension if u not in own], *own)

    def measures(self, named: str | None = None) -> tuple[Measure, ...]:
        """The factor's own units that apply under the name `named` (None: the general ones)."""
        return tuple(m for m in self.extra_units if m.applies(named))

    def units_text(self, named: str | None = None) -> str:
        """The allowed units for a message, measures with their size: 'mL, L or glass (250 mL)'."""
        own = self.measures(named)
        names = {m.name for m in own}
        plain = [self.unit, *[u for u in known_unit_symbols(self.dimension)
                              if u not in (self.unit, *names)]]  # fmt: skip
        plain = [
            f"{u} ({format_number(convert(1.0, u, self.unit))} {self.unit})"
            if u in HOUSEHOLD_UNITS
            else u
            for u in plain
        ]
        parts = plain + [f"{m.name} ({format_number(m.size)} {self.unit})" for m in own]
        return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"

    def to_canonical(self, value: Any, unit: str | None = None, named: str | None = None) -> float:
        """`value` in `unit` (None or '' for the canonical unit) as a checked canonical amount;
        `named` is the name the factor was logged under (for measures such as a cup of coffee)."""
        shown = f"'{format_number(value)} {unit}'" if unit and _is_real(value) else None
        value = check_amount_value(value, shown)
        amount = tidy(value * self._scale_of(value, unit, named))
        if amount > self.max_amount:
            raise IntakeError(self._too_much_message(amount, shown, unit))
        return amount

    def parse(self, text: str, named: str | None = None) -> float:
        """A typed amount such as '1.5 L' or '2' (canonical unit) as a checked canonical amount."""
        value, unit = parse_amount(text)
        return self.to_canonical(value, unit, named)

    def to_dict(self) -> dict[str, Any]:
        """The factor for the UI or for storage of custom factors."""
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "kind": self.kind,
            "units": list(self.allowed_units()),
            "measures": [
                {"name": m.name, "size": m.size, "when_named": m.when_named}
                for m in self.extra_units
            ],
            "aliases": list(self.aliases),
            "needs_unit": self.dimension != COUNT,
            "quick_adds": [{"label": q.label, "amount": q.amount} for q in self.quick_adds],
            "max_amount": self.max_amount if math.isfinite(self.max_amount) else None,
            "custom": self.custom,
        }

    def _scale_of(self, value: float, unit: str | None, named: str | None = None) -> float:
        """Size of one `unit` in canonical units, or an IntakeError naming the allowed units."""
        if unit is None or not unit.strip():
            return 1.0
        size = self._extra_unit_size(unit, named)
        if size is not None:
            return size
        found = lookup_unit_or_none(unit)
        if found is None:
            key = _unit_key(unit)
            if key in AMBIGUOUS_UNITS:
                problem = f"{key!r} is ambiguous (an ounce of mass or of volume)"
            else:
                problem = f"unknown unit {unit.strip()!r}"
            raise IntakeError(f"{self.key}: {problem}; give {self.units_text(named)}")
        if found.dimension != self.dimension:
            raise IntakeError(self._wrong_dimension_message(value, unit, found, named))
        return found.scale / _UNITS_BY_SYMBOL[self.unit].scale

    def _extra_unit_size(self, unit: str, named: str | None = None) -> float | None:
        """Size of one of the factor's own units ('drink', also as 'drinks'), or None; a
        measure for the name logged under wins over a general one."""
        matching = [m for m in self.measures(named) if m.spelt(unit)]
        matching.sort(key=lambda m: not m.when_named)
        return matching[0].size if matching else None

    def _too_much_message(self, amount: float, shown: str | None, unit: str | None) -> str:
        converted = shown is not None and lookup_unit_or_none(unit) != _UNITS_BY_SYMBOL[self.unit]
        in_canonical = f"{format_number(amount)} {self.unit}"
        given = f"{shown} is {in_canonical}," if converted else f"{in_canonical} is"
        return (
            f"{self.key}: {given} more than the {format_number(self.max_amount)} {self.unit} "
            "allowed in one entry; check the amount and its unit"
        )

    def _wrong_dimension_message(
        self, value: float, unit: str, found: Unit, named: str | None = None
    ) -> str:
        hint = f" ({self.unit_hint})" if self.unit_hint else ""
        return (
            f"{self.key} is {self._measured_in()}; '{format_number(value)} {unit.strip()}' "
            f"is {_article(found.dimension)}: give {self.units_text(named)}{hint}"
        )

    def _measured_in(self) -> str:
        if self.dimension != COUNT:
            return f"measured in {self.unit}"
        return "a count" if self.unit == "count" else f"counted in {self.unit}s"


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _article(dimension: str) -> str:
    return {MASS: "a mass", VOLUME: "a volume", TIME: "a time", COUNT: "a count"}[dimension]


def _factor(key: str, label: str, unit: str, **fields: Any) -> Factor:
    quick = tuple(QuickAdd(text, float(amount)) for text, amount in fields.pop("quick_adds", ()))
    own = tuple(Measure(*spec) for spec in fields.pop("extra_units", ()))
    return Factor(key, label, unit, quick_adds=quick, extra_units=own, **fields)


_TABLET_HINT = "a tablet's content varies: give the mg on its label"


_STANDARD_DRINK_G = 10.0
BUILTIN_FACTORS: tuple[Factor, ...] = (
    _factor(
        "water", "Water", "mL",
        aliases=("h2o", "fluid", "fluids", "drinking water"),
        quick_adds=(("glass 250 mL", 250), ("bottle 500 mL", 500)),
        max_amount=20_000.0,
        extra_units=(("glass", 250.0), ("bottle", 500.0), ("can", 330.0)),
        description="What you drank, as a volume.",
    ),
    _factor(
        "magnesium", "Magnesium", "mg",
        aliases=("mg", "magnesium supplement"),
        quick_adds=(("200 mg", 200), ("400 mg", 400)),
        max_amount=5_000.0,
        unit_hint=_TABLET_HINT,
        description="Elemental magnesium, from food or supplements.",
    ),
    _factor(
        "potassium", "Potassium", "mg",
        aliases=("k",),
        quick_adds=(("banana (about 420 mg)", 420), ("99 mg tablet", 99)),
        max_amount=20_000.0,
        unit_hint=_TABLET_HINT,
    ),
    _factor(
        "calcium", "Calcium", "mg",
        aliases=("ca",),
        quick_adds=(("glass of milk (about 300 mg)", 300), ("500 mg tablet", 500)),
        max_amount=10_000.0,
        unit_hint=_TABLET_HINT,
    ),
    _factor(
        "sodium", "Sodium", "mg",
        aliases=("na",),
        quick_adds=(("1 g salt (about 390 mg)", 390),),
        max_amount=20_000.0,
        description="Sodium, not salt: 1 g of table salt has about 390 mg of sodium.",
    ),
    _factor(
        "vitamin_e", "Vitamin E", "mg",
        aliases=("vit e", "tocopherol"),
        quick_adds=(("15 mg", 15),),
        max_amount=2_000.0,
    ),
    _factor(
        "vitamin_b6", "Vitamin B6", "mg",
        aliases=("b6", "vit b6", "pyridoxine", "b6 (pyridoxine)"),
        quick_adds=(("25 mg", 25), ("50 mg", 50)),
        max_amount=1_000.0,
    ),
    _factor(
        "caffeine", "Caffeine", "mg",
        aliases=("coffee", "tea", "espresso", "cola"),
        quick_adds=(("coffee (about 95 mg)", 95), ("espresso (about 63 mg)", 63),
                    ("tea (about 47 mg)", 47)),
        max_amount=2_000.0,
        extra_units=(("cup", 95.0, "coffee"), ("mug", 140.0, "coffee"), ("cup", 47.0, "tea"),
                     ("mug", 70.0, "tea"), ("shot", 63.0, "espresso"), ("cup", 63.0, "espresso"),
                     ("can", 34.0, "cola")),
        unit_hint="coffee, tea, espresso and cola can be logged by the cup, mug, shot or can: "
        "'coffee 1 cup' is 95 mg",
    ),
    _factor(
        "alcohol", "Alcohol", "g",
        aliases=("ethanol",),
        quick_adds=((f"1 standard drink ({_STANDARD_DRINK_G:g} g)", _STANDARD_DRINK_G),),
        max_amount=500.0,
        extra_units=(
            ("drink", _STANDARD_DRINK_G), ("standard drink", _STANDARD_DRINK_G),
            ("us drink", 14.0), ("uk unit", 8.0),
        ),
        unit_hint="grams of ethanol; 1 drink = 10 g, 1 us drink = 14 g, 1 uk unit = 8 g",
        description="Grams of ethanol. A standard drink here is 10 g; US drinks are 14 g, UK "
        "units 8 g.",
    ),
    _factor(
        "exercise", "Exercise", "min",
        aliases=("workout", "activity", "sport"),
        quick_adds=(("15 min", 15), ("30 min", 30), ("60 min", 60)),
        max_amount=1_440.0,
    ),
    _factor(
        "diuretic", "Diuretic", "mg",
        aliases=("diuretics", "water pill", "water pills", "furosemide", "frusemide"),
        quick_adds=(("20 mg", 20), ("40 mg", 40)),
        max_amount=2_000.0,
        description="Dose of one diuretic (e.g. furosemide); doses of different drugs do not "
        "compare.",
    ),
    _factor(
        "medication", "Medication", "dose",
        kind=EVENT,
        aliases=("medicine", "meds", "med"),
        quick_adds=(("1 dose", 1),),
        max_amount=50.0,
        default_amount=1.0,
        unit_hint="to track a drug by mg, log it under its own name, e.g. 'gabapentin'",
        description="Taken or not taken. Track a specific drug by dose under its own name.",
    ),
    _factor(
        "phosphate_binder", "Phosphate binder", "dose",
        kind=EVENT,
        aliases=("binder", "binders", "phosphate binders", "sevelamer", "calcium acetate",
                 "lanthanum", "sucroferric oxyhydroxide"),
        quick_adds=(("with a meal (1 dose)", 1),),
        max_amount=20.0,
        default_amount=1.0,
        description="Taken with meals to lower phosphate: taken or not taken, counted in doses.",
    ),
    _factor(
        "dialysis", "Dialysis session", "mL",
        kind=EVENT,
        aliases=("hemodialysis", "haemodialysis", "hd", "dialysis session"),
        quick_adds=(("session (no volume given)", 0),),
        max_amount=10_000.0,
        default_amount=0.0,
        unit_hint="the ultrafiltration volume; 0 mL or no amount still logs the session",
        description="A session; the amount is the ultrafiltration volume removed, in mL.",
    ),
)  # fmt: skip


def normalise_name(text: str) -> str:
    """A factor name folded for lookup: NFKC, lower case, spaces/'-'/'_' runs as one '_'."""
    folded = unicodedata.normalize("NFKC", text).casefold().strip()
    return re.sub(r"[\s_-]+", "_", folded)


def custom_factor_key(name: str) -> str:
    """The key for a custom factor name, or an IntakeError that says what names are allowed."""
    if not isinstance(name, str):
        raise IntakeError(f"factor must be a name, not {type(name).__name__}")
    key = normalise_name(name).strip("_")
    allowed = all(ch.isalnum() or ch == "_" for ch in key)
    if not key or len(key) > CUSTOM_NAME_MAX or not allowed or not any(c.isalpha() for c in key):
        raise IntakeError(
            f"factor name {name.strip()!r} is not allowed: use 1-{CUSTOM_NAME_MAX} letters, digits, "
            "spaces, '-' and '_', with at least one letter"
        )
    return key


def make_custom_factor(
    name: str, unit: str | None = None, *, label: str | None = None, kind: str = AMOUNT
) -> Factor:
    """A custom factor whose canonical unit is `unit` (a known unit; 'count' if None)."""
    key = custom_factor_key(name)
    canonical = lookup_unit(unit).symbol if unit and unit.strip() else "count"
    dimension = _UNITS_BY_SYMBOL[canonical].dimension
    bound = CUSTOM_MAX_BY_DIMENSION[dimension] / _UNITS_BY_SYMBOL[canonical].scale
    shown = label.strip() if label and label.strip() else key.replace("_", " ").capitalize()
    return Factor(key, shown[:CUSTOM_NAME_MAX], canonical, kind, max_amount=bound, custom=True)


class Catalogue:
    """The built-in factors plus registered custom factors; looks names and aliases up.

    `custom` takes Factors or the dicts of `custom_records()`, so a store can persist the custom
    factors and build the same catalogue again. Registration is thread-safe.
    """

    def __init__(
        self,
        custom: Iterable[Factor | Mapping[str, Any]] = (),
        builtins: Iterable[Factor] = BUILTIN_FACTORS,
    ) -> None:
        self._lock = threading.Lock()
        self._factors: dict[str, Factor] = {}
        self._names: dict[str, str] = {}
        for factor in builtins:
            self._add(factor)
        for item in custom:
            self.register(item if isinstance(item, Factor) else factor_from_record(item))

    def __iter__(self) -> Iterator[Factor]:
        return iter(list(self._factors.values()))

    def __len__(self) -> int:
        return len(self._factors)

    def __contains__(self, name: object) -> bool:
        return self.find(name) is not None

    def find(self, name: object) -> Factor | None:
        """The factor with this key or alias (any case, spaces or '_'), or None."""
        if not isinstance(name, str):
            return None
        key = self._names.get(normalise_name(name))
        return self._factors[key] if key is not None else None

    def get(self, name: str) -> Factor:
        """The factor with this key or alias, or an IntakeError listing the built-in factors."""
        factor = self.find(name)
        if factor is None:
            known = ", ".join(f.key for f in self)
            raise IntakeError(f"unknown factor {name!r}: known factors are {known}")
        return factor

    def resolve(self, name: str, unit: str | None = None, *, new_factor: bool = False) -> Factor:
        """The known factor for `name`, or a new (not yet registered) custom factor in `unit`.

        A name close to a known one is an UnknownFactorError ("did you mean magnesium?") unless
        `new_factor` confirms that a factor of its own is meant."""
        if not isinstance(name, str):
            raise IntakeError(f"factor must be a name, not {type(name).__name__}")
        found = self.find(name)
        if found is not None:
            return found
        close = () if new_factor else self.suggest(name)
        if close:
            labels = " or ".join(self._factors[k].label.lower() for k in close)
            raise UnknownFactorError(
                f"unknown factor {name.strip()!r}: did you mean {labels}? If {name.strip()!r} "
                "is a factor of its own, confirm it as a new factor",
                close,
            )
        return make_custom_factor(name, unit)

    def suggest(self, name: str, cutoff: float = 0.75) -> tuple[str, ...]:
        """Keys of the factors whose names or aliases are spelt close to `name`, closest first."""
        folded = normalise_name(name)
        if len(folded) < 3:
            return ()
        keys = []
        names = [n for n in self._names if len(n) >= 4]  # 'na', 'k', 'hd' are too short to tell
        for close in difflib.get_close_matches(folded, names, n=6, cutoff=cutoff):
            key = self._names[close]
            if key not in keys:
                keys.append(key)
        return tuple(keys[:3])

    def register(self, factor: Factor) -> Factor:
        """Add a custom factor (idempotent); a clash with another factor is an IntakeError."""
        if not factor.custom:
            raise IntakeError(f"{factor.key} is not a custom factor")
        with self._lock:
            existing = self.find(factor.key)
            if existing is None:
                self._add(factor)
                return factor
            if existing.custom and existing.unit == factor.unit:
                return existing
            raise IntakeError(
                f"custom factor {factor.key!r} clashes with the existing factor "
                f"{existing.key!r} in {existing.unit}"
            )

    def custom_factors(self) -> tuple[Factor, ...]:
        """The registered custom factors, in registration order."""
        return tuple(f for f in self if f.custom)

    def custom_records(self) -> list[dict[str, str]]:
        """The custom factors as small dicts for storage; `Catalogue(custom=...)` reads them."""
        return [
            {"key": f.key, "label": f.label, "unit": f.unit, "kind": f.kind}
            for f in self.custom_factors()
        ]

    def _add(self, factor: Factor) -> None:
        labels = () if factor.custom else (factor.label,)
        names = {normalise_name(n) for n in (factor.key, *labels, *factor.aliases)}
        taken = sorted(n for n in names if self._names.get(n, factor.key) != factor.key)
        if factor.key in self._factors or taken:
            raise IntakeError(f"factor {factor.key!r}: names already in use: {taken or factor.key}")
        self._factors[factor.key] = factor
        self._names.update(dict.fromkeys(names, factor.key))


def factor_from_record(record: Mapping[str, Any]) -> Factor:
    """A custom factor from a `Catalogue.custom_records()` dict."""
    try:
        return make_custom_factor(
            record["key"], record.get("unit"), label=record.get("label"),
            kind=record.get("kind", AMOUNT),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as error:
        raise IntakeError(f"bad custom factor record {dict(record)!r}: {error}") from None


__all__ = [
    "AMOUNT",
    "BUILTIN_FACTORS",
    "COUNT",
    "EVENT",
    "MASS",
    "TIME",
    "UNITS",
    "VOLUME",
    "Catalogue",
    "Factor",
    "IntakeError",
    "Measure",
    "QuickAdd",
    "Unit",
    "UnknownFactorError",
    "check_amount_value",
    "convert",
    "custom_factor_key",
    "factor_from_record",
    "format_number",
    "known_unit_symbols",
    "lookup_unit",
    "lookup_unit_or_none",
    "make_custom_factor",
    "normalise_name",
    "parse_amount",
    "tidy",
]
