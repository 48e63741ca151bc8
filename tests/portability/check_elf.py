"""What the installed binaries ask of the system, read from their ELF dynamic
sections: every glibc symbol of the extension must exist in glibc 2.17, the
wheel's baseline; the command asks nothing (it is linked statically: see
crates/py/build.rs).

auditwheel checks the versioned symbols (GLIBC_2.x) and the libraries; it does
not see a symbol that the link left unversioned because the glibc 2.17 stubs
(zig's) do not define it: such a symbol needs a newer glibc, and a loader
without it refuses the module ("undefined symbol") however the wheel is
tagged. Weak references are std's optional lookups (statx, gettid: std
checks them for null and falls back), so they are fine.
"""

import re
from dataclasses import dataclass

import pytest
from elftools.elf.elffile import ELFFile

import installed

# The libraries a manylinux2014 wheel may need from the system (auditwheel's
# policy; the dynamic loader itself too), less those lastwords has no use for.
SYSTEM_LIBRARIES = {
    "libc.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "libm.so.6",
    "librt.so.1",
    "libutil.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
}
GLIBC_VERSION = re.compile(r"^GLIBC_(\d+(?:\.\d+)+)$")


BINARIES = {"extension": installed.extension}


@dataclass(frozen=True)
class Import:
    name: str
    weak: bool
    library: str  # from the version requirement; "" when unversioned
    version: str  # e.g. "GLIBC_2.17"; "" when unversioned


def read_dynamic(path):
    """(needed libraries, undefined dynamic symbols, program interpreter)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        dynamic = elf.get_section_by_name(".dynamic")
        if dynamic is None:  # static, not PIE
            return [], [], None
        needed = [tag.needed for tag in dynamic.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
        requirements = {}
        verneed = elf.get_section_by_name(".gnu.version_r")
        if verneed is not None:
            for file, auxiliaries in verneed.iter_versions():
                for aux in auxiliaries:
                    requirements[aux["vna_other"]] = (file.name, aux.name)
        versym = elf.get_section_by_name(".gnu.version")
        imports = []
        dynsym = elf.get_section_by_name(".dynsym")
        for index, sym in enumerate(dynsym.iter_symbols() if dynsym is not None else ()):
            if sym["st_shndx"] != "SHN_UNDEF" or not sym.name:
                continue
            ndx = versym.get_symbol(index)["ndx"] if versym is not None else "VER_NDX_GLOBAL"
            library, version = requirements.get(ndx & 0x7FFF, ("", "")) if isinstance(ndx, int) else ("", "")
            imports.append(Import(sym.name, sym["st_info"]["bind"] == "STB_WEAK", library, version))
        interp = None
        for segment in elf.iter_segments():
            if segment["p_type"] == "PT_INTERP":
                interp = segment.get_interp_name()
        return needed, imports, interp


def glibc_version(version):
    match = GLIBC_VERSION.match(version)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def missing_from_glibc(binary):
    """Strong undefined symbols without a version: not in the glibc the wheel
    was linked against. The extension's Python C API symbols (Py*, _Py*) are
    the interpreter's, not glibc's."""
    _, imports, _ = read_dynamic(BINARIES[binary]())
    return {
        i.name
        for i in imports
        if not i.version and not i.weak and not (binary == "extension" and re.match(r"_?Py", i.name))
    }


def test_the_wheel_is_tagged_for_the_baseline():
    tags = installed.wheel_tags()
    assert any(tag.endswith("-" + installed.BASELINE_TAG) for tag in tags), tags


@pytest.mark.parametrize("binary", BINARIES)
def test_glibc_symbol_versions_are_at_most_the_baseline(binary):
    _, imports, _ = read_dynamic(BINARIES[binary]())
    too_new = sorted(
        f"{i.name}@{i.version}"
        for i in imports
        if i.version.startswith("GLIBC_") and (glibc_version(i.version) or (99,)) > installed.BASELINE
    )
    assert too_new == [], f"symbols newer than glibc {installed.BASELINE}: {too_new}"
    assert any(i.version.startswith("GLIBC_") for i in imports), "no versioned glibc symbol: not a glibc binary?"


@pytest.mark.parametrize("binary", BINARIES)
def test_no_symbol_the_baseline_glibc_lacks(binary):
    missing = sorted(missing_from_glibc(binary))
    assert missing == [], f"not in glibc {installed.BASELINE} (unversioned, strong): {missing}"


@pytest.mark.parametrize("binary", BINARIES)
def test_only_system_libraries_are_needed(binary):
    needed, _, _ = read_dynamic(BINARIES[binary]())
    assert "libc.so.6" in needed
    assert sorted(set(needed) - SYSTEM_LIBRARIES) == []


def test_the_extension_needs_no_stub_library():
    """scripts/drop-stub-libraries: libpthread.so.0 and libdl.so.2 are not
    loaded for the extension (empty stubs from glibc 2.34), and no version
    requirement names them; the ones that did name libc.so.6, weak."""
    needed, imports, _ = read_dynamic(installed.extension())
    assert sorted(set(needed) & {"libpthread.so.0", "libdl.so.2"}) == []
    assert {i.library for i in imports if i.library} <= {"libc.so.6", "ld-linux-x86-64.so.2"}
    # Still bound to the versions of the glibc 2.17 link.
    assert any(i.name == "pthread_create" and i.version == "GLIBC_2.2.5" for i in imports)
    assert any(i.name == "dladdr1" and i.version == "GLIBC_2.3.3" for i in imports)


def test_the_command_needs_nothing_of_the_system():
    """Linked statically (static-pie): no loader, no library, no symbol to
    bind, so it runs whatever glibc the system has and starts ~0.5 ms sooner.
    A dynamic command here means build.rs fell back (no libc.a where the
    wheel was built)."""
    needed, imports, interp = read_dynamic(installed.command())
    assert (needed, interp) == ([], None), f"the command is dynamically linked: needs {needed}, loader {interp}"
    assert [i.name for i in imports if not i.weak] == []
