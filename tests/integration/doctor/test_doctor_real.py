"""``sandpool doctor`` on this machine with the real runc and runsc (Debian bookworm's runsc:
ptrace and kvm, no systrap; kvm hangs here): real smoke tests, and nothing left behind."""

from __future__ import annotations

import pytest

from tests.integration.doctor.conftest import Doctor

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]

RUNC_POOL = "    fast:\n      containerRuntime: runc\n"


def gvisor_pool(platform: str = "") -> str:
    """A gVisor pool ``secure`` rooted in the test's gvisorRoot, with ``platform`` if given."""
    setting = f"        gvisorPlatform: {platform}\n" if platform else ""
    return (
        "    secure:\n      containerRuntime: gvisor\n      containerRuntimeConfig:\n"
        f"        gvisorRoot: GVISOR_ROOT\n{setting}"
    )


@pytest.mark.runc
def test_runc_pool_is_ok_with_a_real_smoke_test(doctor: Doctor) -> None:
    done = doctor(RUNC_POOL)
    assert done.status == 0, done.body
    assert done.check(None, "cgroups")["status"] == "ok"
    runtime = done.check("fast", "runtime")
    assert runtime["status"] == "ok"
    assert runtime["message"].startswith("runc ")
    smoke = done.check("fast", "smoke")
    assert (smoke["status"], smoke["message"][:30]) == ("ok", "`true` ran and exited 0 (runc;")
    userns = done.check("fast", "userns")
    assert (userns["status"], userns["message"][:30]) == ("ok", "on: container root is host uid")


@pytest.mark.runsc
@pytest.mark.parametrize("platform", ["ptrace", ""])
def test_gvisor_ptrace_pool_is_ok(doctor: Doctor, platform: str) -> None:
    done = doctor(gvisor_pool(platform))
    assert done.status == 0, done.body
    assert done.check("secure", "platform")["message"].startswith("ptrace (")
    assert done.check("secure", "gvisorRoot")["status"] == "ok"
    smoke = done.check("secure", "smoke")
    assert smoke["status"] == "ok"
    assert "(gvisor, platform ptrace;" in smoke["message"]


@pytest.mark.runsc
def test_explicit_systrap_fails_naming_ptrace_kvm_and_the_version(doctor: Doctor) -> None:
    done = doctor(gvisor_pool("systrap"))
    assert done.status == 1
    platform = done.check("secure", "platform")
    assert platform["status"] == "fail"
    assert "'systrap' is not offered" in platform["message"]
    assert "kvm, ptrace" in platform["message"] or "ptrace, kvm" in platform["message"]
    version = done.check("secure", "runtime")["message"].split()[1]
    assert f"(version {version})" in platform["message"]
    assert done.check("secure", "smoke")["message"].startswith("not run")


def test_bad_runsc_path_fails_with_the_factorys_message(doctor: Doctor) -> None:
    done = doctor(gvisor_pool(), worker="  runscPath: /nonexistent/runsc\n")
    assert done.status == 1
    runtime = done.check("secure", "runtime")
    assert runtime["status"] == "fail"
    assert runtime["message"] == (
        "failed to create gvisor runtime: runsc not found at /nonexistent/runsc "
        "(install the runsc package or set worker.runscPath)"
    )


@pytest.mark.runsc
def test_kvm_fails_here_without_hanging(doctor: Doctor) -> None:
    done = doctor(gvisor_pool("kvm"), "--smoke-timeout", "3")
    assert done.status == 1
    failed = [c for c in done.body["checks"] if c["status"] == "fail"]
    assert [c["pool"] for c in failed] == ["secure"]
    (why,) = [c for c in failed if c["check"] in ("kvm", "smoke")]
    assert "systrap or ptrace" in why["fix"]
    if why["check"] == "smoke":  # /dev/kvm is usable, but the sandbox never starts
        assert why["message"].startswith(
            ("`true` did not start within 3s (", "`true` did not finish within 6s (")
        ), why["message"]
