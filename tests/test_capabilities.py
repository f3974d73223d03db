"""Capabilities: what an implementation claims, how it says so, and how its arguments are shaped."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from harness.model.capabilities import (
    Capabilities,
    Declaration,
    call_arguments,
    declaration_of,
    declare,
    refusal,
    widenings,
)
from harness.model.case import Case

CASE = Case(batch=1, in_channels=2, out_channels=2, groups=1, height=6, width=6, kernel=(3, 3))


def _conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return input


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, named",
    [
        pytest.param({"dtypes": ("float32", "float8")}, "dtypes", id="unknown-dtype"),
        pytest.param({"layouts": ("sparse",)}, "layouts", id="unknown-layout"),
        pytest.param({"padding_modes": ("reflect",)}, "padding_modes", id="unknown-padding-mode"),
        pytest.param({"arg_forms": ("list",)}, "arg_forms", id="unknown-arg-form"),
        pytest.param({"arg_forms": ()}, "arg_forms", id="empty-arg-forms"),
        pytest.param({"batched": False, "unbatched": False}, "batched", id="neither-batched-nor-unbatched"),
        pytest.param({"dtypes": ()}, "dtypes", id="no-dtypes"),
        pytest.param({"layouts": ()}, "layouts", id="no-layouts"),
        pytest.param({"algorithm": "strassen"}, "algorithm", id="unknown-algorithm"),
        pytest.param({"algorithm": "fft", "autograd": True}, "autograd", id="autograd-of-a-transform"),
    ],
)
def test_invalid_capabilities_are_rejected_naming_the_field(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError) as raised:
        Capabilities(**fields)
    assert named in str(raised.value)


def test_an_unknown_value_is_named_in_the_message() -> None:
    with pytest.raises(ValueError, match="float8"):
        Capabilities(dtypes=("float8",))


def test_a_single_string_is_taken_as_a_one_element_tuple() -> None:
    assert Capabilities(dtypes="float64").dtypes == ("float64",)  # type: ignore[arg-type]
    assert Capabilities(arg_forms="pair").arg_forms == ("pair",)  # type: ignore[arg-type]


def test_choices_are_put_in_canonical_order_so_equal_domains_compare_equal() -> None:
    a = Capabilities(dtypes=("float64", "float32"), layouts=("strided", "contiguous"))
    b = Capabilities(dtypes=("float32", "float64"), layouts=("contiguous", "strided"))
    assert a == b and hash(a) == hash(b)


def test_from_mapping_rejects_unknown_fields_naming_them() -> None:
    with pytest.raises(ValueError) as raised:
        Capabilities.from_mapping({"dtype": ["float32"], "bias": False})
    assert "'dtype'" in str(raised.value)


def test_from_mapping_accepts_lists_and_round_trips_through_to_mapping() -> None:
    caps = Capabilities.from_mapping({"dtypes": ["float32"], "arg_forms": ["int"], "bias": False})
    assert caps == Capabilities(dtypes=("float32",), arg_forms=("int",), bias=False)
    assert Capabilities.from_mapping(caps.to_mapping()) == caps


def test_differences_lists_only_the_narrowed_fields() -> None:
    assert Capabilities().differences() == {}
    assert Capabilities(bias=False, dtypes=("float64",)).differences() == {"bias": False, "dtypes": ["float64"]}
    assert Capabilities(algorithm="direct").differences() == {}
    assert Capabilities(algorithm="winograd").differences() == {"algorithm": "winograd"}


def test_a_bad_algorithm_is_one_line_naming_the_choices() -> None:
    with pytest.raises(ValueError) as raised:
        Capabilities.from_mapping({"algorithm": "FFT"})
    assert str(raised.value) == (
        "capabilities: unknown algorithm 'FFT'; choose from ('direct', 'fft', 'winograd', 'any')"
    )


@pytest.mark.parametrize("algorithm", ["direct", "fft", "winograd", "any"])
def test_the_algorithm_round_trips_through_a_dict_and_declare(algorithm: str) -> None:
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return input

    caps = Capabilities(algorithm=algorithm)
    assert Capabilities.from_mapping(caps.to_mapping()) == caps
    assert declaration_of(declare(algorithm=algorithm)(conv)).capabilities == caps
    conv.__conv2d_declaration__ = {"algorithm": algorithm}  # type: ignore[attr-defined]
    assert declaration_of(conv).capabilities == caps


def test_the_algorithm_is_not_part_of_the_domain_or_of_the_repr_that_seeds_draws() -> None:
    fft = Capabilities(bias=False, algorithm="fft", autograd=False)
    assert fft.domain() == Capabilities(bias=False) and fft.domain() != fft
    assert Capabilities(autograd=True).domain() == Capabilities()
    assert repr(fft) == repr(Capabilities(bias=False))


# -- declaring ----------------------------------------------------------------------------


def test_an_undeclared_function_claims_the_whole_domain() -> None:
    assert declaration_of(_conv) == Declaration(Capabilities(), known_buggy=False)


def test_declare_attaches_a_declaration_that_declaration_of_reads_back() -> None:
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return input

    decorated = declare(known_buggy=True, dtypes=("float32",), autograd=True)(conv)
    assert decorated is conv
    assert declaration_of(conv) == Declaration(Capabilities(dtypes=("float32",), autograd=True), True)


def test_declare_rejects_an_unknown_field_when_decorating() -> None:
    with pytest.raises(ValueError, match="colour"):
        declare(colour="red")


def test_a_plain_dict_declaration_works_without_importing_the_harness() -> None:
    def conv(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return input

    declared = {"known_buggy": True, "bias": False, "layouts": ["contiguous"]}
    conv.__conv2d_declaration__ = declared  # type: ignore[attr-defined]
    assert declaration_of(conv) == Declaration(Capabilities(bias=False, layouts=("contiguous",)), True)
    assert "known_buggy" in declared  # reading it does not consume the plugin's dict
    assert declaration_of(conv).known_buggy


def test_a_declaration_of_another_type_is_rejected_naming_the_type() -> None:
    def conv() -> None: ...

    conv.__conv2d_declaration__ = ["bias"]  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="list"):
        declaration_of(conv)


# -- refusal ------------------------------------------------------------------------------

# (narrowed capabilities, a case inside them, a case outside them, what the reason names)
NARROWED = [
    pytest.param(Capabilities(unbatched=False), CASE, replace(CASE, batch=None), "unbatched", id="unbatched"),
    pytest.param(Capabilities(batched=False), replace(CASE, batch=None), CASE, "batched", id="batched"),
    pytest.param(
        Capabilities(max_in_channels=2), CASE, replace(CASE, in_channels=3), "in_channels", id="max-in-channels"
    ),
    pytest.param(
        Capabilities(max_out_channels=2), CASE, replace(CASE, out_channels=4), "out_channels", id="max-out-channels"
    ),
    pytest.param(Capabilities(groups=False), CASE, replace(CASE, groups=2), "groups", id="groups"),
    pytest.param(Capabilities(bias=False), CASE, replace(CASE, bias=True), "bias", id="bias"),
    pytest.param(
        Capabilities(dilation=False),
        replace(CASE, dilation=(1, 1)),
        replace(CASE, dilation=2),
        "dilation",
        id="dilation",
    ),
    pytest.param(Capabilities(dilation=False), CASE, replace(CASE, dilation=(1, 2)), "dilation", id="dilation-pair"),
    pytest.param(
        Capabilities(square_kernels_only=True), CASE, replace(CASE, kernel=(3, 2)), "kernel", id="square-kernels"
    ),
    pytest.param(
        Capabilities(padding_modes=("valid",)),
        replace(CASE, padding="valid"),
        replace(CASE, padding="same"),
        "same",
        id="padding-mode",
    ),
    pytest.param(
        Capabilities(padding_modes=()),
        replace(CASE, padding=1),
        replace(CASE, padding="valid"),
        "valid",
        id="no-padding-modes",
    ),
    pytest.param(Capabilities(dtypes=("float64",)), replace(CASE, dtype="float64"), CASE, "float32", id="dtype"),
    pytest.param(Capabilities(layouts=("contiguous",)), CASE, replace(CASE, layout="strided"), "strided", id="layout"),
    pytest.param(
        Capabilities(arg_forms=("int",)),
        replace(CASE, stride=(2, 2)),
        replace(CASE, stride=(1, 2)),
        "stride",
        id="stride-pair-to-int-only",
    ),
    pytest.param(
        Capabilities(arg_forms=("int",)),
        replace(CASE, padding=(1, 1)),
        replace(CASE, padding=(0, 1)),
        "padding",
        id="padding-pair-to-int-only",
    ),
    pytest.param(
        Capabilities(arg_forms=("int",)),
        replace(CASE, dilation=(2, 2)),
        replace(CASE, dilation=(2, 1)),
        "dilation",
        id="dilation-pair-to-int-only",
    ),
]


@pytest.mark.parametrize("caps, inside, outside, named", NARROWED)
def test_refusal_names_each_narrowed_dimension_and_accepts_cases_inside(
    caps: Capabilities, inside: Case, outside: Case, named: str
) -> None:
    assert inside.problems() == [] and outside.problems() == []
    assert refusal(caps, inside) is None
    reason = refusal(caps, outside)
    assert reason is not None and named in reason
    assert refusal(Capabilities(), outside) is None  # it is the narrowing that refuses


def test_batched_refusal_does_not_claim_the_case_is_unbatched() -> None:
    reason = refusal(Capabilities(batched=False), CASE)
    assert reason is not None and "unbatched" not in reason


# -- call arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "forms, given, passed",
    [
        pytest.param(("int",), (2, 2), 2, id="equal-pair-to-int"),
        pytest.param(("pair",), 2, (2, 2), id="int-to-pair"),
        pytest.param(("int", "pair"), 2, 2, id="int-kept"),
        pytest.param(("int", "pair"), (2, 2), (2, 2), id="pair-kept"),
        pytest.param(("pair",), (1, 2), (1, 2), id="unequal-pair-kept"),
        pytest.param(("int",), 3, 3, id="int-to-int"),
    ],
)
def test_call_arguments_give_stride_padding_and_dilation_in_a_declared_form(
    forms: tuple[str, ...], given: Any, passed: Any
) -> None:
    caps = Capabilities(arg_forms=forms)
    case = replace(CASE, height=12, width=12, stride=given, padding=given, dilation=given, groups=2)
    arguments = call_arguments(caps, case)
    assert arguments == {"stride": passed, "padding": passed, "dilation": passed, "groups": 2}
    assert all(type(arguments[k]) is type(passed) for k in ("stride", "padding", "dilation"))


@pytest.mark.parametrize("mode", ["same", "valid"])
def test_call_arguments_pass_a_padding_mode_unchanged(mode: str) -> None:
    arguments = call_arguments(Capabilities(arg_forms=("pair",)), replace(CASE, padding=mode))
    assert arguments["padding"] == mode
    assert arguments["stride"] == (1, 1)


def test_outside_its_forms_an_implementation_gets_the_argument_as_drawn() -> None:
    # Beyond its declaration (the campaign's "raise or be right" pass) there is no form to
    # convert an unequal pair into.
    arguments = call_arguments(Capabilities(arg_forms=("int",)), replace(CASE, height=9, width=9, stride=(1, 2)))
    assert arguments["stride"] == (1, 2)


def test_widenings_lift_one_declared_limit_at_a_time() -> None:
    declared = Capabilities(bias=False, dtypes=("float32",), arg_forms=("int",))
    everything = Capabilities()
    lifted = widenings(declared, everything)
    assert lifted == [
        replace(declared, bias=True),
        replace(declared, arg_forms=("int", "pair")),
        replace(declared, dtypes=everything.dtypes),
    ]
    assert widenings(everything, everything) == []
    assert widenings(replace(everything, autograd=True), everything) == []  # not a limit on cases
    assert widenings(replace(everything, algorithm="fft"), everything) == []  # nor is this


def test_a_device_outside_the_declared_ones_is_refused() -> None:
    assert refusal(Capabilities(devices=("cpu",)), replace(CASE, device="cuda")) == "device cuda"
    with pytest.raises(ValueError, match="devices"):
        Capabilities(devices=("tpu",))


# -- isolate: the cases called in a child process ------------------------------------------

NOT_ISOLATE = "capabilities: isolate must be true, false, a condition or a list of conditions,"
FP16_ON_AVX512 = {"dtype": "float16", "cpu_flags": {"contains": "avx512_fp16"}}


@pytest.mark.parametrize(
    "declared, isolated",
    [
        pytest.param(False, (False, False), id="false"),
        pytest.param(True, (True, True), id="true"),
        pytest.param({"dtype": "float16"}, (True, False), id="a-condition"),
        pytest.param([{"bias": True}, {"dtype": "float16"}], (True, True), id="any-of-a-list"),
        pytest.param([{"groups": 2}, {"layout": "strided"}], (False, False), id="none-of-a-list"),
    ],
)
def test_isolate_picks_the_cases_meeting_its_conditions(declared: object, isolated: tuple[bool, bool]) -> None:
    caps = Capabilities.from_mapping({"isolate": declared})
    half, biased = replace(CASE, dtype="float16"), replace(CASE, bias=True)
    assert (caps.isolates(half), caps.isolates(biased)) == isolated
    assert Capabilities.from_mapping(caps.to_mapping()) == caps and caps.to_mapping()["isolate"] == declared


def test_isolate_says_how_not_where_it_is_called_so_the_draws_stay_the_same() -> None:
    caps = Capabilities(bias=False, isolate=FP16_ON_AVX512)  # type: ignore[arg-type]
    assert repr(caps) == repr(Capabilities(bias=False))
    assert caps.domain() == Capabilities(bias=False) and widenings(caps, Capabilities()) == [replace(caps, bias=True)]
    assert replace(caps, bias=True).isolate == caps.isolate  # kept as it is through replace


def test_list_shows_what_is_isolated() -> None:
    caps = Capabilities.from_mapping({"isolate": [FP16_ON_AVX512, {"groups": 2}]})
    assert caps.shown() == ["isolate: cpu_flags contains 'avx512_fp16', dtype='float16' or groups=2"]
    assert Capabilities(isolate=True).shown() == ["isolate: every case"]  # type: ignore[arg-type]
    assert Capabilities(isolate=False).differences() == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "declared, message",
    [
        ("yes", f"{NOT_ISOLATE} not 'yes' (of type str)"),
        (1, f"{NOT_ISOLATE} not 1 (of type int)"),
        ({}, "capabilities: isolate is an empty condition; to isolate every case, say true"),
        ([{"bias": True}, {}], "capabilities: isolate[1] is an empty condition; to isolate every case, say true"),
        ({"dtype": "float8"}, "capabilities: isolate: dtype='float8' is not one of"),
        ([{"cpu_flags": "avx512_fp16"}], "capabilities: isolate[0]: cpu_flags is compared with 'contains'"),
        (["bias"], "capabilities: isolate[0] must be a mapping of field to value, not str"),
    ],
)
def test_a_bad_isolate_is_one_line_naming_it(declared: object, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Capabilities.from_mapping({"isolate": declared})
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
