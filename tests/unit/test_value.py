"""kexec_py.value: frozen value classes with dataclasses' semantics (the ones kexec_py
uses), checked against dataclasses itself where both apply."""

from __future__ import annotations

import dataclasses

import pytest

from kexec_py.value import FrozenInstanceError, field, fields, frozen, replace


@frozen(order=True)
class Point:
    x: int
    y: int = 0
    note: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.x < 0:
            raise ValueError(f"negative x {self.x}")


@dataclasses.dataclass(frozen=True, order=True)
class DataPoint:
    x: int
    y: int = 0
    note: str = dataclasses.field(default="", repr=False, compare=False)


@frozen
class Tagged:
    kind: str = field(metadata={"fmt": "B"})
    size: int = field(metadata={"fmt": "H"})


@frozen
class Extended(Point):
    z: int = 0


@pytest.mark.parametrize("args, kwargs", [
    ((1,), {}), ((1, 2), {}), ((1,), {"y": 2}), ((), {"x": 1, "y": 2, "note": "n"}), ((1, 2, "n"), {}),
])
def test_init_binds_as_dataclasses_does(args, kwargs):
    ours, theirs = Point(*args, **kwargs), DataPoint(*args, **kwargs)
    assert (ours.x, ours.y, ours.note) == (theirs.x, theirs.y, theirs.note)
    assert repr(ours) == repr(theirs).replace("DataPoint", "Point")


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {}, "missing argument 'x'"),
    ((1, 2, "n", 4), {}, "takes 3 arguments, 4 given"),
    ((1,), {"x": 2}, "got 'x' twice"),
    ((1,), {"z": 2}, "unexpected arguments 'z'"),
])
def test_init_refuses_what_dataclasses_refuses(args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)
    with pytest.raises(TypeError):
        DataPoint(*args, **kwargs)


def test_post_init_runs_on_construction_and_on_replace():
    with pytest.raises(ValueError, match="negative x -1"):
        Point(-1)
    with pytest.raises(ValueError, match="negative x -2"):
        replace(Point(1), x=-2)


@pytest.mark.parametrize("action", [
    lambda p: setattr(p, "x", 2), lambda p: setattr(p, "new", 2), lambda p: delattr(p, "x"),
])
def test_values_are_frozen(action):
    point = Point(1)
    with pytest.raises(FrozenInstanceError):
        action(point)
    assert point == Point(1)


@pytest.mark.parametrize("a, b", [((1, 2), (1, 3)), ((1, 2), (2, 0)), ((1, 2), (1, 2)), ((2, 0), (1, 9))])
def test_eq_hash_and_order_as_dataclasses(a, b):
    ours, theirs = (Point(*a), Point(*b)), (DataPoint(*a), DataPoint(*b))
    for compare in (lambda p, q: p == q, lambda p, q: p < q, lambda p, q: p <= q,
                    lambda p, q: p > q, lambda p, q: p >= q):
        assert compare(*ours) == compare(*theirs)
    assert (hash(ours[0]) == hash(ours[1])) == (a == b)


def test_compare_false_fields_are_outside_eq_and_hash():
    assert Point(1, 2, "a") == Point(1, 2, "b") and hash(Point(1, 2, "a")) == hash(Point(1, 2, "b"))


def test_other_classes_are_neither_equal_nor_ordered():
    assert Point(1, 2) != DataPoint(1, 2) and Point(1, 2) != (1, 2)
    with pytest.raises(TypeError):
        assert Point(1, 2) < (1, 3)


def test_unordered_values_have_no_order():
    with pytest.raises(TypeError):
        assert Tagged("a", 1) < Tagged("b", 1)


def test_fields_in_order_with_metadata_and_defaults_as_class_attributes():
    assert [(f.name, f.metadata) for f in fields(Tagged)] == [("kind", {"fmt": "B"}), ("size", {"fmt": "H"})]
    assert not hasattr(Tagged, "kind")  # no default: no class attribute
    assert Point.y == 0 and Point.note == ""


def test_a_subclass_extends_its_base_fields():
    assert [f.name for f in fields(Extended)] == ["x", "y", "note", "z"]
    assert Extended(1, 2, "n", 3).z == 3 and replace(Extended(1, z=3), y=5) == Extended(1, 5, z=3)
    with pytest.raises(ValueError):
        Extended(-1)


def test_replace_keeps_what_it_does_not_change():
    assert replace(Point(1, 2, "n"), y=3) == Point(1, 3) and replace(Point(1, 2, "n"), y=3).note == "n"
    with pytest.raises(TypeError, match="unexpected arguments 'z'"):
        replace(Point(1), z=1)
