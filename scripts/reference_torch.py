#!/usr/bin/env python3
"""Independent PyTorch reference for stories15M per-token log-probabilities.

This script shares no code with the TypeScript engine. It reads the llama2.c
checkpoint (models/stories15M/model.bin) and tokenizer (tokenizer.bin)
directly, tokenizes with a line-by-line port of llama2.c run.c `encode()`,
runs the Llama forward pass in float64 (and float32 for comparison), and
writes tests/fixtures/stories15m-reference.json.

Usage (Debian's python3-torch; a pyenv `python3` may not see it):

    /usr/bin/python3 scripts/reference_torch.py [--out PATH] [--model-dir DIR]

Each fixture entry holds ids = [BOS] + encode(text) and, for every token
ids[t] with t >= 1, log p(ids[t] | ids[:t]) from the float64 forward.
"""

import argparse
import hashlib
import json
import math
import os
import random
import re
import struct
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOS_ID = 1

# --------------------------------------------------------------------------
# Sentences. Story-like sentences in the TinyStories style (8-60 words), a few
# with punctuation, quotes, numbers and non-ASCII characters, and a couple of
# non-story sentences.
# --------------------------------------------------------------------------
SENTENCES = [
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine.",
    "Tom had a red ball. He liked to throw it high in the sky and catch it with his hands.",
    "One day, a small bird flew into the garden and sat on the old tree.",
    "The cat was very hungry, so she went to the kitchen to look for some milk.",
    "Mom said, \"Do not touch the hot stove, Ben!\" Ben listened and stayed away.",
    "Sara and her brother built a big sand castle at the beach. When the waves came, the castle fell down, but they laughed and built another one.",
    "The dog wagged his tail when the boy came home from school.",
    "Timmy was sad because he lost his favorite toy car. He looked under the bed, behind the door and in the box. At last, his sister found it in the garden and gave it back to him. Timmy smiled and said thank you.",
    "\"Can I have a cookie, please?\" asked Amy. Her grandma smiled and gave her two cookies.",
    "There were 3 little ducks swimming in the pond with their mother.",
    "The sun was shining and the birds were singing. It was a happy day in the park.",
    "Max wanted to fly like a bird, so he made wings out of paper. He jumped, but he fell on the soft grass. He was not hurt, and he laughed.",
    "Lucy found a shiny rock near the river. She put it in her pocket and ran home to show her dad.",
    "The little bunny was scared of the dark. His mom gave him a hug and said, \"I am here, you are safe.\"",
    "Once there was a big, friendly bear who lived in the forest. Every morning he ate honey and played with the other animals.",
    "Jack and Jill went to the store to buy apples, bread and milk for their mom.",
    "The princess looked out of the window and saw a dragon! She was brave, so she went outside to talk to it. The dragon was lonely and wanted a friend.",
    "It was raining, so Anna stayed inside and drew pictures of flowers, trees and a rainbow.",
    "The frog said, \"Ribbit, ribbit!\" and jumped into the water with a big splash.",
    "On her 5th birthday, Mia got a pink bike. She rode it around the yard 10 times before dinner.",
    "Ben saw a café on the corner, and he asked his dad if they could get a treat there.",
    "The teacher asked the children to share their toys. Emma gave her blocks to Sam, and Sam gave his crayons to Emma. They became good friends and played together all afternoon.",
    "A boy named Leo — who was only four — wanted to climb the tallest hill in town. 🙂",
    "The old man planted a seed in his garden. He watered it every day, and soon a beautiful flower grew.",
    "Kitty chased the yarn across the floor until she was tired. Then she curled up on the warm rug and fell asleep.",
    # non-story sentences
    "The quarterly revenue report shows a 12% increase in operating costs compared to the previous fiscal year.",
    "To compile the program, run make in the build directory and then execute the resulting binary with the config file.",
    "Photosynthesis converts carbon dioxide and water into glucose and oxygen using energy from sunlight.",
]

# Coherent story sentences used for the shuffled-words sanity check
SHUFFLE_CHECK = [0, 1, 2, 3, 10, 12, 14, 23]


# --------------------------------------------------------------------------
# Tokenizer: port of llama2.c run.c build_tokenizer() + encode()
# --------------------------------------------------------------------------
class Tokenizer:
    def __init__(self, path, vocab_size):
        with open(path, "rb") as f:
            data = f.read()
        (self.max_token_length,) = struct.unpack_from("<i", data, 0)
        off = 4
        self.vocab = []
        self.scores = []
        for _ in range(vocab_size):
            (score,) = struct.unpack_from("<f", data, off)
            (n,) = struct.unpack_from("<i", data, off + 4)
            off += 8
            self.vocab.append(data[off:off + n])
            self.scores.append(score)
            off += n
        assert off == len(data), "trailing bytes in tokenizer.bin"
        # Byte-fallback tokens. In Llama's sentencepiece vocab, ids 3..258 are
        # <0x00>..<0xFF>, and llama2.c's own tokenizer.py writes them verbatim
        # as the 6-char strings "<0xXX>", which str_lookup can never match.
        # This tokenizer.bin (the npm-packaged copy) stores them instead as the
        # raw byte (0x00-0x7F) or as the UTF-8 encoding of U+0080..U+00FF,
        # which collides with real vocab entries (" " vs "▁", "e", "é", ...)
        # and would make run.c's bsearch ambiguous. Restore the llama2.c form
        # so encode() behaves exactly as run.c with the canonical tokenizer.bin.
        for i in range(3, 259):
            b = i - 3
            stored = self.vocab[i]
            canon = b"<0x%02X>" % b
            assert stored in (canon, bytes([b]), chr(b).encode("utf-8")), (i, stored)
            self.vocab[i] = canon
        # run.c str_lookup: bsearch over strings sorted by strcmp. With unique
        # strings a dict is equivalent; assert uniqueness so that holds.
        self.lookup = {}
        dups = 0
        for i, s in enumerate(self.vocab):
            if s in self.lookup:
                dups += 1
            else:
                self.lookup[s] = i
        assert dups == 0, f"{dups} duplicate vocab strings; bsearch result would be ambiguous"

    def str_lookup(self, s):
        return self.lookup.get(s, -1)

    def encode(self, text):
        """run.c encode(t, text, bos=0, eos=0): returns ids without BOS."""
        tb = text.encode("utf-8")
        # C strings stop at NUL
        if b"\0" in tb:
            tb = tb[:tb.index(b"\0")]
        tokens = []
        # add_dummy_prefix: only if text != ""
        if len(tb) > 0:
            tokens.append(self.str_lookup(b" "))
        # UTF-8 codepoint lookup with byte fallback
        buf = bytearray()
        n = len(tb)
        for i in range(n):
            c = tb[i]
            if (c & 0xC0) != 0x80:
                buf = bytearray()  # str_len = 0
            buf.append(c)
            nxt = tb[i + 1] if i + 1 < n else 0  # '\0' terminator
            if (nxt & 0xC0) == 0x80 and len(buf) < 4:
                continue
            tid = self.str_lookup(bytes(buf))
            if tid != -1:
                tokens.append(tid)
            else:
                for b in buf:
                    tokens.append(b + 3)
            buf = bytearray()
        # merge the best consecutive pair each iteration (by vocab score)
        while True:
            best_score = -1e10
            best_id = -1
            best_idx = -1
            for i in range(len(tokens) - 1):
                s = self.vocab[tokens[i]] + self.vocab[tokens[i + 1]]
                tid = self.str_lookup(s)
                if tid != -1 and self.scores[tid] > best_score:
                    best_score = self.scores[tid]
                    best_id = tid
                    best_idx = i
            if best_idx == -1:
                break
            tokens[best_idx] = best_id
            del tokens[best_idx + 1]
        return tokens

    def decode_bytes(self, ids):
        """Inverse used for a round-trip check (run.c decode semantics)."""
        out = bytearray()
        prev = BOS_ID
        for t in ids:
            piece = self.vocab[t]
            if prev == BOS_ID and piece.startswith(b" "):
                piece = piece[1:]
            if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
                piece = bytes([int(piece[3:5], 16)])
            out += piece
            prev = t
        return bytes(out)


# --------------------------------------------------------------------------
# Checkpoint reader: llama2.c legacy (version 0) model.bin
# --------------------------------------------------------------------------
def load_checkpoint(path):
    with open(path, "rb") as f:
        data = f.read()
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = struct.unpack_from("<7i", data, 0)
    shared = vocab_size > 0
    vocab_size = abs(vocab_size)
    cfg = dict(dim=dim, hidden_dim=hidden_dim, n_layers=n_layers, n_heads=n_heads,
               n_kv_heads=n_kv_heads, vocab_size=vocab_size, seq_len=seq_len, shared=shared)
    head_size = dim // n_heads
    kv_dim = dim * n_kv_heads // n_heads
    flat = torch.frombuffer(bytearray(data[28:]), dtype=torch.float32)
    off = 0

    def take(*shape):
        nonlocal off
        n = 1
        for s in shape:
            n *= s
        t = flat[off:off + n].reshape(shape).clone()
        off += n
        return t

    L, d, ff, V = n_layers, dim, hidden_dim, vocab_size
    w = {}
    w["tok"] = take(V, d)
    w["rms_att"] = take(L, d)
    w["wq"] = take(L, d, n_heads * head_size)
    w["wk"] = take(L, kv_dim, d)
    w["wv"] = take(L, kv_dim, d)
    w["wo"] = take(L, d, n_heads * head_size)
    w["rms_ffn"] = take(L, d)
    w["w1"] = take(L, ff, d)
    w["w2"] = take(L, d, ff)
    w["w3"] = take(L, ff, d)
    w["rms_final"] = take(d)
    off += seq_len * head_size // 2  # freq_cis_real (unused)
    off += seq_len * head_size // 2  # freq_cis_imag (unused)
    if shared:
        w["cls"] = w["tok"]
    else:
        w["cls"] = take(V, d)
    assert off == flat.numel(), f"checkpoint size mismatch: consumed {off} of {flat.numel()} floats"
    return cfg, w


# --------------------------------------------------------------------------
# Forward pass (whole sequence, causal mask): matches run.c forward() per pos
# --------------------------------------------------------------------------
def rmsnorm(x, weight, eps=1e-5):
    ss = (x * x).mean(dim=-1, keepdim=True) + eps
    return x * torch.rsqrt(ss) * weight


def rope_tables(T, head_size, dtype):
    # run.c: for i in 0..dim step 2: head_dim = i % head_size;
    #   freq = 1 / 10000^(head_dim / head_size); val = pos * freq
    # computed in float64 and cast, so both precisions see the same angles
    hd = torch.arange(0, head_size, 2, dtype=torch.float64)
    freq = 1.0 / torch.pow(torch.tensor(10000.0, dtype=torch.float64), hd / head_size)
    pos = torch.arange(T, dtype=torch.float64)
    ang = pos[:, None] * freq[None, :]  # [T, head_size/2]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def apply_rope(x, cos, sin):
    # x: [T, H, hs]; rotate interleaved pairs (2i, 2i+1) within each head
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    c = cos[:, None, :]
    s = sin[:, None, :]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def forward_logprobs(cfg, w, ids, dtype):
    """Return log_softmax(logits) [T, V] for tokens ids (list of int)."""
    d, H, KVH = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    hs = d // H
    rep = H // KVH
    T = len(ids)
    assert T <= cfg["seq_len"]
    W = {k: v.to(dtype) for k, v in w.items()}
    x = W["tok"][torch.tensor(ids)]  # [T, d]
    cos, sin = rope_tables(T, hs, dtype)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(cfg["n_layers"]):
        xb = rmsnorm(x, W["rms_att"][l])
        q = (xb @ W["wq"][l].T).view(T, H, hs)
        k = (xb @ W["wk"][l].T).view(T, KVH, hs)
        v = (xb @ W["wv"][l].T).view(T, KVH, hs)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)  # [H, T, hs]
        att = (q @ k.transpose(1, 2)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf"))
        att = torch.softmax(att, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, d)
        x = x + o @ W["wo"][l].T
        xb = rmsnorm(x, W["rms_ffn"][l])
        h1 = xb @ W["w1"][l].T
        h3 = xb @ W["w3"][l].T
        h = torch.nn.functional.silu(h1) * h3
        x = x + h @ W["w2"][l].T
    x = rmsnorm(x, W["rms_final"])
    logits = x @ W["cls"].T
    return torch.log_softmax(logits, dim=-1)


def token_logprobs(cfg, w, ids, dtype):
    lp = forward_logprobs(cfg, w, ids, dtype)
    tgt = torch.tensor(ids[1:])
    return lp[:-1].gather(1, tgt[:, None])[:, 0]


def sig(x, n=7):
    return float(f"{x:.{n}g}")


def to_json(obj):
    """Indented JSON with number arrays kept on one line (small, diff-able)."""
    text = json.dumps(obj, indent=1, ensure_ascii=False)
    text = re.sub(r"\[\s*(-?[0-9][^\[\]{}\"]*?)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    json.loads(text)  # still valid
    return text + "\n"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "models", "stories15M"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "stories15m-reference.json"))
    args = ap.parse_args()

    t0 = time.time()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model_path = os.path.join(args.model_dir, "model.bin")
    tok_path = os.path.join(args.model_dir, "tokenizer.bin")
    cfg, w = load_checkpoint(model_path)
    print("config:", cfg)
    tok = Tokenizer(tok_path, cfg["vocab_size"])

    # tokenizer self-checks
    assert tok.encode("") == []
    for s in SENTENCES:
        ids = tok.encode(s)
        assert tok.decode_bytes(ids) == s.encode("utf-8"), f"round-trip failed: {s!r}"
        nw = len(s.split())
        assert 8 <= nw <= 60, f"{nw} words: {s!r}"
    assert tok.encode("Hello world") == [15043, 3186]
    print("tokenizer: round-trip ok for", len(SENTENCES), "sentences;",
          'encode("Hello world") =', tok.encode("Hello world"))

    # forward self-check: greedy decoding from BOS reproduces llama2.c's
    # well-known stories15M temperature-0 sample
    gen = [BOS_ID]
    for _ in range(24):
        gen.append(int(forward_logprobs(cfg, w, gen, torch.float32)[-1].argmax()))
    gtext = tok.decode_bytes(gen[1:]).decode("utf-8", "replace")
    print("greedy from BOS:", repr(gtext))
    assert gtext.startswith("Once upon a time, there was a little girl named Lily."), gtext

    entries = []
    max_diff = 0.0
    max_sum_diff = 0.0
    for s in SENTENCES:
        ids = [BOS_ID] + tok.encode(s)
        lp64 = token_logprobs(cfg, w, ids, torch.float64)
        lp32 = token_logprobs(cfg, w, ids, torch.float32)
        diff = (lp64 - lp32.double()).abs().max().item()
        max_diff = max(max_diff, diff)
        max_sum_diff = max(max_sum_diff, abs(lp64.sum().item() - lp32.double().sum().item()))
        lps = lp64.tolist()
        entries.append({
            "text": s,
            "ids": ids,
            "logprobs": [sig(x) for x in lps],
            "sum": sig(sum(lps), 10),
            "mean": sig(sum(lps) / len(lps), 10),
        })
    print(f"f32 vs f64: max |dlogprob| per token = {max_diff:.3e}, max |dsum| per sentence = {max_sum_diff:.3e}")

    # sanity check: coherent sentence vs same words shuffled
    rng = random.Random(1234)
    coh, shuf = [], []
    for i in SHUFFLE_CHECK:
        s = SENTENCES[i]
        words = s.split()
        perm = words[:]
        while perm == words:
            rng.shuffle(perm)
        t = " ".join(perm)
        m_c = entries[i]["mean"]
        lp = token_logprobs(cfg, w, [BOS_ID] + tok.encode(t), torch.float64)
        m_s = lp.mean().item()
        coh.append(m_c)
        shuf.append(m_s)
        print(f"  coherent {m_c:8.4f}  shuffled {m_s:8.4f}  | {t[:70]}")
    mc, ms = sum(coh) / len(coh), sum(shuf) / len(shuf)
    print(f"mean log-prob per token: coherent {mc:.4f} vs shuffled {ms:.4f}")
    assert all(c > s_ + 1.0 for c, s_ in zip(coh, shuf)), "coherent text should score far above shuffled"

    out = {
        "model": "stories15M",
        "source": f"scripts/reference_torch.py (PyTorch {torch.__version__}, float64)",
        "sha256": sha256_file(model_path),
        "tokenizer_sha256": sha256_file(tok_path),
        "bos_id": BOS_ID,
        "notes": "ids = [BOS] + llama2.c run.c encode(text) (dummy prefix, byte fallback +3, score-greedy merges); "
                 "logprobs[t] = log p(ids[t+1] | ids[0..t]) from a float64 forward; logprobs rounded to 7 significant digits.",
        "f32_vs_f64_max_abs_diff": sig(max_diff, 3),
        "f32_vs_f64_max_abs_sum_diff": sig(max_sum_diff, 3),
        "shuffle_check": {"coherent_mean": sig(mc, 6), "shuffled_mean": sig(ms, 6)},
        "sentences": entries,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(to_json(out))
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes) in {time.time() - t0:.1f}s")


# ==========================================================================
# Hugging Face families: tiny random checkpoints in each family's real layout
# and a float64 reference forward written from the published transformers
# modelling code (huggingface/transformers, src/transformers/...), not from
# concord's TypeScript. Subcommand:
#
#     /usr/bin/python3 scripts/reference_torch.py hf [--family NAME ...] [--out-dir tests/fixtures/hf]
#
# Each family folder gets config.json (the family's real field names),
# model.safetensors (its real tensor names, in its usual storage dtype),
# tokenizer.json + tokenizer_config.json (a tiny sentencepiece-style BPE with
# byte fallback, so `concord logprob --model <folder>` works), and
# reference.json: for a few random id sequences, log p(ids[t] | ids[:t]) for
# t >= 1 from the float64 forward.
#
# Precision policy. The equations are the modelling files'; the arithmetic is
# float64 throughout, except where transformers itself forces float32 whatever
# the model dtype: the RoPE inverse frequencies (computed in float32 at init,
# modeling_rope_utils.py) and the angle position * inv_freq (the rotary
# embedding's forward runs with autocast off in .float(), modeling_llama.py
# LlamaRotaryEmbedding.forward). cos/sin of that float32 angle are taken in
# float64. (transformers' RMSNorm also casts to float32; that is a precision
# cast, not part of the equation, and is not reproduced.)
# ==========================================================================

import struct as _struct

HF_DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def st_write(path, tensors):
    """Write a safetensors file: u64 header length, JSON header, raw little-endian data."""
    header, blobs, off = {}, [], 0
    for name, (t, dtype) in tensors.items():
        t = t.detach().to(HF_DT[dtype]).contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if dtype != "F32" else t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(_struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def tiny_tokenizer():
    """A sentencepiece-style BPE tokenizer.json (legacy Llama form: Prepend/Replace normalizer, byte fallback)."""
    pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + ["\u2581"]
    pieces += [chr(c) for c in range(33, 127)]
    merges = [("\u2581", "t"), ("h", "e"), ("\u2581t", "he"), ("\u2581", "a"), ("i", "n"), ("\u2581", "s"),
              ("e", "r"), ("o", "n"), ("a", "n"), ("\u2581", "w"), ("r", "e"), ("\u2581", "b"), ("e", "d"),
              ("\u2581", "c"), ("i", "t"), ("o", "u"), ("\u2581a", "n"), ("\u2581an", "d")]
    for a, b in merges:
        pieces.append(a + b)
    vocab = {p: i for i, p in enumerate(pieces)}
    assert len(vocab) == len(pieces)
    special = lambda i: {"id": i, "content": pieces[i], "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    tj = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(0), special(1), special(2)],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                           {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                     {"type": "ByteFallback"}, {"type": "Fuse"},
                                                     {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }
    cfg = {"tokenizer_class": "LlamaTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
           "pad_token": None, "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False, "legacy": True}
    return tj, cfg, len(pieces)


# ---- equations ------------------------------------------------------------

def rms_norm(x, w, eps):
    # modeling_llama.py LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * weight
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_type(cfg):
    rs = cfg.get("rope_scaling")
    return rs.get("rope_type", rs.get("type")) if rs else None


def longrope_attention_factor(cfg):
    # modeling_rope_utils.py _compute_longrope_parameters: factor from max / original positions when
    # the config has original_max_position_embeddings; attention_factor sqrt(1 + log f / log orig).
    rs = cfg["rope_scaling"]
    factor, af = rs.get("factor"), rs.get("attention_factor")
    if cfg.get("original_max_position_embeddings"):
        orig = cfg["original_max_position_embeddings"]
        factor = cfg["max_position_embeddings"] / orig
    else:
        orig = cfg["max_position_embeddings"]
    if af is None:
        af = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(orig))
    return af


def inv_freq_f32(cfg, head_dim):
    """modeling_rope_utils.py: _compute_default_rope_parameters, and _compute_llama3_parameters
    when rope_scaling.rope_type == 'llama3' — in float32, as transformers computes it. head_dim is
    the rotary dim (head_dim * partial_rotary_factor)."""
    base = cfg.get("rope_theta", 10000.0)
    dim = head_dim
    rs = cfg.get("rope_scaling")
    if rope_type(cfg) in ("longrope", "su"):
        # _compute_longrope_parameters with seq_len within original_max_position_embeddings: short_factor
        ext = torch.tensor(rs["short_factor"], dtype=torch.float32)
        return 1.0 / (ext * base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor = rs["factor"]
        low_freq_factor = rs["low_freq_factor"]
        high_freq_factor = rs["high_freq_factor"]
        old_context_len = rs["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_freq_wavelen, inv / factor, inv)
        smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        inv = torch.where(is_medium, smoothed, inv_l)
    elif rs and rs.get("rope_type", rs.get("type")) == "linear":
        # _compute_linear_scaling_rope_parameters: inv_freq /= factor
        inv = inv / rs["factor"]
    elif rs and rs.get("rope_type", rs.get("type")) not in (None, "default"):
        raise ValueError(f"rope_scaling {rs} not implemented here")
    return inv


def rope_cos_sin(cfg, head_dim, T):
    # modeling_llama.py LlamaRotaryEmbedding.forward: freqs = inv_freq @ positions (float32),
    # emb = cat(freqs, freqs); cos/sin (here in float64 of the float32 angle).
    inv = inv_freq_f32(cfg, head_dim)
    pos = torch.arange(T, dtype=torch.float32)
    freqs = pos[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1).double()
    # attention_scaling multiplies cos and sin (1 except longrope; modeling_phi3.py Phi3RotaryEmbedding)
    af = longrope_attention_factor(cfg) if rope_type(cfg) in ("longrope", "su") else 1.0
    return emb.cos() * af, emb.sin() * af


def rotate_half(x):
    # modeling_llama.py rotate_half
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope_half(x, cos, sin):
    # modeling_llama.py apply_rotary_pos_emb: x * cos + rotate_half(x) * sin; x [H, T, hd].
    # modeling_phi3.py: only the first rotary_dim = cos.shape[-1] dims rotate, the rest pass through.
    rd = cos.shape[-1]
    x_rot, x_pass = x[..., :rd], x[..., rd:]
    return torch.cat([x_rot * cos[None] + rotate_half(x_rot) * sin[None], x_pass], dim=-1)


def attention(q, k, v, window, scaling, softcap=None):
    """modeling_llama.py eager_attention_forward (repeat_kv for GQA, softmax(QK^T * scaling + mask) V);
    mask from masking_utils.py: causal_mask_function kv_idx <= q_idx, and for sliding layers
    sliding_window_overlay kv_idx > q_idx - sliding_window.
    models/gemma2/modeling_gemma2.py eager_attention_forward: scores * scaling, then
    softcap * tanh(scores / softcap) when attn_logit_softcapping is set, then the mask, softmax."""
    H, T, hd = q.shape
    rep = H // k.shape[0]
    k = k.repeat_interleave(rep, dim=0)
    v = v.repeat_interleave(rep, dim=0)
    qi = torch.arange(T)[:, None]
    ki = torch.arange(T)[None, :]
    allowed = ki <= qi
    if window:
        allowed = allowed & (ki > qi - window)
    s = torch.matmul(q, k.transpose(1, 2)) * scaling
    if softcap is not None:
        s = torch.tanh(s / softcap) * softcap
    s = s.masked_fill(~allowed[None], float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v)


def gemma_rms_norm(x, w, eps):
    # modeling_gemma2.py / modeling_gemma3.py GemmaRMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + weight)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)


def gemma_forward_logprobs(cfg, W, ids):
    """Gemma 2 (models/gemma2/modeling_gemma2.py) and Gemma 3 text (models/gemma3/modeling_gemma3.py):
      embeddings * hidden_size**0.5 (Gemma2Model.forward normalizer; Gemma3TextScaledWordEmbedding);
      DecoderLayer: x + post_attention_layernorm(attn(input_layernorm(x))),
                    x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)));
      MLP down(gelu_pytorch_tanh(gate(x)) * up(x)); RMSNorm * (1 + w);
      attention scaling query_pre_attn_scalar**-0.5; Gemma 2: attn_logit_softcapping on the scores;
      sliding layers: layer_types, else Gemma 2 (configuration_gemma2.py) even layers,
      Gemma 3 (configuration_gemma3.py) bool((i + 1) % sliding_window_pattern);
      Gemma 3: q_norm / k_norm (Gemma RMSNorm over head_dim) before RoPE; sliding layers use
      rope_local_base_freq with default RoPE, global layers rope_theta with rope_scaling;
      CausalLM: logits = tanh(logits / final_logit_softcapping) * final_logit_softcapping when set."""
    arch = cfg["architectures"][0]
    g3 = arch == "Gemma3ForCausalLM"
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    n = cfg["num_hidden_layers"]
    if cfg.get("layer_types"):
        types = cfg["layer_types"]
    elif g3:
        types = ["sliding_attention" if (i + 1) % cfg["sliding_window_pattern"] else "full_attention" for i in range(n)]
    else:
        types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)]
    x = W["model.embed_tokens.weight"][torch.tensor(ids)] * torch.tensor(d ** 0.5, dtype=torch.float64)
    rope_global = rope_cos_sin(cfg, hd, T)
    rope_local = rope_cos_sin({"rope_theta": cfg.get("rope_local_base_freq", 10000.0)}, hd, T) if g3 else rope_global
    scaling = cfg["query_pre_attn_scalar"] ** -0.5
    softcap = None if g3 else cfg.get("attn_logit_softcapping")
    lin = lambda h, name: h @ W[name + ".weight"].T
    for i in range(n):
        p = f"model.layers.{i}."
        sliding = types[i] == "sliding_attention"
        r = x
        h = gemma_rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj").view(T, H, hd).transpose(0, 1)
        k = lin(h, p + "self_attn.k_proj").view(T, KV, hd).transpose(0, 1)
        v = lin(h, p + "self_attn.v_proj").view(T, KV, hd).transpose(0, 1)
        if g3:
            q = gemma_rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = gemma_rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        cos, sin = rope_local if sliding else rope_global
        q, k = apply_rope_half(q, cos, sin), apply_rope_half(k, cos, sin)
        a = attention(q, k, v, cfg["sliding_window"] if sliding else None, scaling, softcap)
        a = lin(a.transpose(0, 1).reshape(T, H * hd), p + "self_attn.o_proj")
        x = r + gemma_rms_norm(a, W[p + "post_attention_layernorm.weight"], eps)
        r = x
        h = gemma_rms_norm(x, W[p + "pre_feedforward_layernorm.weight"], eps)
        g = torch.nn.functional.gelu(lin(h, p + "mlp.gate_proj"), approximate="tanh")
        m = lin(g * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        x = r + gemma_rms_norm(m, W[p + "post_feedforward_layernorm.weight"], eps)
    x = gemma_rms_norm(x, W["model.norm.weight"], eps)
    logits = x @ W["model.embed_tokens.weight"].T
    cap = cfg.get("final_logit_softcapping")
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1)


def layer_plan(fam, cfg):
    """Per layer: (sliding window or None, uses RoPE), from each family's configuration file."""
    n = cfg["num_hidden_layers"]
    arch = cfg["architectures"][0]
    sw = cfg.get("sliding_window")
    if arch == "MinistralForCausalLM":
        # configuration_ministral.py layer_types (default: all sliding when sliding_window is set);
        # modeling_ministral.py: sliding_window only on "sliding_attention" layers
        lt = cfg.get("layer_types") or (["sliding_attention" if sw is not None else "full_attention"] * n)
        return [((sw if t == "sliding_attention" else None), True) for t in lt]
    if arch in ("MistralForCausalLM", "Phi3ForCausalLM"):
        # modeling_mistral.py / modeling_phi3.py: every layer passes sliding_window=config.sliding_window
        return [(sw, True)] * n
    if arch == "SmolLM3ForCausalLM":
        # configuration_smollm3.py: no_rope_layers (1 = RoPE); layer_types sliding only for NoPE
        # layers when use_sliding_window; modeling_smollm3.py: self.use_rope = no_rope_layers[i]
        nrl = cfg.get("no_rope_layers") or [int((i + 1) % cfg.get("no_rope_layer_interval", 4) != 0) for i in range(n)]
        use_sw = cfg.get("use_sliding_window") and sw is not None
        return [((sw if (use_sw and not nrl[i]) else None), bool(nrl[i])) for i in range(n)]
    if arch in ("Qwen2ForCausalLM", "Qwen3ForCausalLM"):
        # configuration_qwen3.py: sliding_window only if use_sliding_window, on layers i >= max_window_layers
        use = cfg.get("use_sliding_window") and sw is not None
        mwl = cfg.get("max_window_layers", n)
        return [((sw if use and i >= mwl else None), True) for i in range(n)]
    return [(None, True)] * n  # modeling_llama.py: full causal attention, RoPE everywhere


def hf_forward_logprobs(fam, cfg, W, ids):
    """Llama-style decoder (modeling_llama.py LlamaDecoderLayer: x + attn(norm(x)), x + mlp(norm(x)),
    LlamaMLP down(silu(gate(x)) * up(x))), with each family's differences:
      Qwen3  (models/qwen3/modeling_qwen3.py): q_norm / k_norm RMSNorm over head_dim of each head,
             before RoPE; head_dim from config; q/k/v biases only with attention_bias.
      Mistral (models/mistral/modeling_mistral.py): sliding-window mask in every layer.
      Ministral (models/ministral/modeling_ministral.py): sliding-window mask on layer_types' sliding layers.
      SmolLM3 (models/smollm3/modeling_smollm3.py): RoPE skipped in layers with no_rope_layers[i] == 0.
      Phi-3   (models/phi3/modeling_phi3.py): fused qkv_proj (q | k | v rows) and gate_up_proj
             (gate | up: up * act(gate)), partial_rotary_factor, longrope, sliding window everywhere.
    Returns log_softmax(logits) [T, V] in float64."""
    d = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or d // H
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    cos, sin = rope_cos_sin(cfg, int(hd * cfg.get("partial_rotary_factor", 1.0)), T)
    scaling = hd ** -0.5
    lin = lambda h, name: h @ W[name + ".weight"].T + (W[name + ".bias"] if name + ".bias" in W else 0)
    for i, (window, use_rope) in enumerate(layer_plan(fam, cfg)):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        if p + "self_attn.qkv_proj.weight" in W:  # Phi-3
            qkv = lin(h, p + "self_attn.qkv_proj")
            qp = H * hd
            q, k, v = qkv[..., :qp], qkv[..., qp:qp + KV * hd], qkv[..., qp + KV * hd:]
        else:
            q, k, v = lin(h, p + "self_attn.q_proj"), lin(h, p + "self_attn.k_proj"), lin(h, p + "self_attn.v_proj")
        q = q.reshape(T, H, hd).transpose(0, 1)
        k = k.reshape(T, KV, hd).transpose(0, 1)
        v = v.reshape(T, KV, hd).transpose(0, 1)
        if p + "self_attn.q_norm.weight" in W:  # Qwen3
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        if use_rope:
            q, k = apply_rope_half(q, cos, sin), apply_rope_half(k, cos, sin)
        a = attention(q, k, v, window, scaling).transpose(0, 1).reshape(T, H * hd)
        x = x + lin(a, p + "self_attn.o_proj")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if p + "mlp.gate_up_proj.weight" in W:  # Phi-3
            g, u = lin(h, p + "mlp.gate_up_proj").chunk(2, dim=-1)
        else:
            g, u = lin(h, p + "mlp.gate_proj"), lin(h, p + "mlp.up_proj")
        x = x + lin(u * torch.nn.functional.silu(g), p + "mlp.down_proj")
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return torch.log_softmax(x @ head.T, dim=-1)


# ---- families -------------------------------------------------------------

def base_llama_cfg(arch, model_type, vocab, **kw):
    cfg = {
        "architectures": [arch], "model_type": model_type, "hidden_size": 64, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_act": "silu",
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": vocab,
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2, "attention_bias": False,
        "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": True,
    }
    cfg.update(kw)
    return cfg


def hf_families(vocab):
    # Field names and values as each family's real config.json ships them (sizes shrunk).
    return {
        # Llama 3.2 1B/3B style: rope_theta 5e5 and the llama3 rope_scaling block, tied head.
        "llama3": (base_llama_cfg("LlamaForCausalLM", "llama", vocab, rope_theta=500000.0, rms_norm_eps=1e-5,
                                  max_position_embeddings=131072, tie_word_embeddings=True, mlp_bias=False,
                                  pretraining_tp=1, head_dim=16, torch_dtype="bfloat16",
                                  rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                                "original_max_position_embeddings": 8192, "rope_type": "llama3"}), "BF16"),
        # SmolLM2 (LlamaForCausalLM, rope_theta 1e5, tied, no rope_scaling).
        "smollm2": (base_llama_cfg("LlamaForCausalLM", "llama", vocab, rope_theta=100000.0, max_position_embeddings=8192,
                                   tie_word_embeddings=True, rope_scaling=None, mlp_bias=False, pretraining_tp=1,
                                   torch_dtype="bfloat16"), "BF16"),
        # Qwen3 0.6B style: explicit head_dim (here 2x hidden/heads), q_norm/k_norm, no biases, tied.
        "qwen3": (base_llama_cfg("Qwen3ForCausalLM", "qwen3", vocab, head_dim=32, rms_norm_eps=1e-6, rope_theta=1000000.0,
                                 max_position_embeddings=40960, tie_word_embeddings=True, rope_scaling=None,
                                 use_sliding_window=False, sliding_window=None, max_window_layers=2,
                                 torch_dtype="bfloat16"), "BF16"),
        # Mistral 7B v0.1 style: sliding_window (here 8, shorter than the test sequences), untied, GQA.
        "mistral": (base_llama_cfg("MistralForCausalLM", "mistral", vocab, sliding_window=8, max_position_embeddings=32768,
                                   tie_word_embeddings=False, torch_dtype="float16"), "F16"),
        # Ministral 8B style (MinistralForCausalLM): layer_types interleaving sliding and full attention.
        "ministral": (base_llama_cfg("MinistralForCausalLM", "ministral", vocab, sliding_window=8, max_position_embeddings=32768,
                                     layer_types=["sliding_attention", "full_attention"], rope_theta=100000000.0,
                                     tie_word_embeddings=False, torch_dtype="bfloat16"), "BF16"),
        # SmolLM3 3B style: no_rope_layers (every 4th layer NoPE in the real one; here layer 2 of 3), tied.
        "smollm3": (base_llama_cfg("SmolLM3ForCausalLM", "smollm3", vocab, num_hidden_layers=3, rope_theta=5000000.0,
                                   rms_norm_eps=1e-6, max_position_embeddings=65536, tie_word_embeddings=True,
                                   no_rope_layers=[1, 1, 0], no_rope_layer_interval=4, use_sliding_window=False,
                                   sliding_window=None, mlp_bias=False, torch_dtype="bfloat16"), "BF16"),
        # Phi-3.5-mini / Phi-4-mini style: fused qkv_proj and gate_up_proj, partial_rotary_factor 0.75
        # (Phi-4-mini's), longrope with short/long factors and original_max_position_embeddings 4096,
        # sliding_window (16 here, so the test sequences cross it), untied head.
        "phi3": (base_llama_cfg("Phi3ForCausalLM", "phi3", vocab, max_position_embeddings=131072,
                                original_max_position_embeddings=4096, partial_rotary_factor=0.75, sliding_window=16,
                                rope_scaling={"type": "longrope", "short_factor": [1.0, 1.08, 1.3, 1.7, 2.6, 4.1],
                                              "long_factor": [1.1, 1.6, 2.9, 6.5, 13.0, 31.0]},
                                tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0, torch_dtype="bfloat16"), "BF16"),
        # Gemma 2 2B style: head_dim and query_pre_attn_scalar set apart from hidden/heads, even layers
        # sliding (window 8 here), and both soft-caps — set far below the real 50 / 30 so that the
        # tiny random model's scores and logits actually reach them.
        "gemma2": ({
            "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 64, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32,
            "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": vocab, "tie_word_embeddings": True,
            "pad_token_id": 0, "eos_token_id": 2, "bos_token_id": 1, "attention_bias": False, "attention_dropout": 0.0,
            "query_pre_attn_scalar": 24, "sliding_window": 8, "final_logit_softcapping": 3.0,
            "attn_logit_softcapping": 1.5, "cache_implementation": "hybrid", "torch_dtype": "bfloat16"}, "BF16"),
        # Gemma 3 text (Gemma3ForCausalLM, as gemma-3-1b-it): q/k norms, local RoPE base on sliding layers,
        # linear rope_scaling on global ones (as the 4B+ text configs), sliding_window_pattern (2 here).
        "gemma3": ({
            "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 64,
            "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
            "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "vocab_size": vocab, "tie_word_embeddings": True, "pad_token_id": 0, "eos_token_id": 2, "bos_token_id": 1,
            "attention_bias": False, "attention_dropout": 0.0, "query_pre_attn_scalar": 32, "sliding_window": 8,
            "sliding_window_pattern": 2, "final_logit_softcapping": None, "attn_logit_softcapping": None,
            "cache_implementation": "hybrid", "torch_dtype": "bfloat16"}, "BF16"),
    }


def hf_random_weights(cfg, seed):
    """Random tensors under the family's real names (modeling_*.py module names)."""
    g = torch.Generator().manual_seed(seed)
    d, V, ff = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or d // H
    W = {}
    mat = lambda name, r, c, sc=None: W.__setitem__(name, torch.randn(r, c, generator=g, dtype=torch.float64) * (sc or c ** -0.5))
    vec = lambda name, n, mean, sc: W.__setitem__(name, mean + sc * torch.randn(n, generator=g, dtype=torch.float64))
    gemma = cfg["architectures"][0].startswith("Gemma")
    nmean = 0.0 if gemma else 1.0  # Gemma stores RMSNorm weights as w in (1 + w)
    mat("model.embed_tokens.weight", V, d, 0.5)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        vec(p + "input_layernorm.weight", d, nmean, 0.1)
        phi = cfg["architectures"][0] == "Phi3ForCausalLM"
        if phi:
            mat(p + "self_attn.qkv_proj.weight", (H + 2 * KV) * hd, d, d ** -0.5)
        else:
            mat(p + "self_attn.q_proj.weight", H * hd, d)
            mat(p + "self_attn.k_proj.weight", KV * hd, d)
            mat(p + "self_attn.v_proj.weight", KV * hd, d)
        if cfg.get("attention_bias"):
            for n, m in (("q", H * hd), ("k", KV * hd), ("v", KV * hd)):
                vec(p + f"self_attn.{n}_proj.bias", m, 0.0, 0.2)
        mat(p + "self_attn.o_proj.weight", d, H * hd)
        if cfg["architectures"][0] in ("Qwen3ForCausalLM", "Gemma3ForCausalLM"):
            vec(p + "self_attn.q_norm.weight", hd, nmean, 0.2)
            vec(p + "self_attn.k_norm.weight", hd, nmean, 0.2)
        vec(p + "post_attention_layernorm.weight", d, nmean, 0.1)
        if gemma:
            vec(p + "pre_feedforward_layernorm.weight", d, nmean, 0.1)
            vec(p + "post_feedforward_layernorm.weight", d, nmean, 0.1)
        if phi:
            mat(p + "mlp.gate_up_proj.weight", 2 * ff, d, d ** -0.5)
        else:
            mat(p + "mlp.gate_proj.weight", ff, d)
            mat(p + "mlp.up_proj.weight", ff, d)
        mat(p + "mlp.down_proj.weight", d, ff)
    vec("model.norm.weight", d, nmean, 0.1)
    if not cfg.get("tie_word_embeddings"):
        mat("lm_head.weight", V, d, 0.5)
    return W


# Fixed per family, so that regenerating one family leaves the others' fixtures byte-identical.
HF_SEEDS = {"llama3": 1000, "mistral": 1001, "qwen3": 1002, "smollm2": 1003, "smollm3": 1004, "gemma2": 1005, "gemma3": 1006,
            "phi3": 1007, "ministral": 1008}


def hf_main(argv):
    ap = argparse.ArgumentParser(prog="reference_torch.py hf")
    ap.add_argument("--family", action="append", help="family to (re)generate (default: all)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "tests", "fixtures", "hf"))
    args = ap.parse_args(argv)
    tj, tcfg, ntok = tiny_tokenizer()
    vocab = ((ntok + 15) // 16) * 16 + 16  # padded past the tokenizer, as real checkpoints often are
    fams = hf_families(vocab)
    names = args.family or list(fams)
    for fi, name in enumerate(names):
        cfg, dtype = fams[name]
        seed = HF_SEEDS[name]
        W = hf_random_weights(cfg, seed)
        # The reference computes on the stored values: round through the storage dtype.
        W = {k: v.to(HF_DT[dtype]).to(torch.float64) for k, v in W.items()}
        out = os.path.join(args.out_dir, name)
        os.makedirs(out, exist_ok=True)
        st_write(os.path.join(out, "model.safetensors"), {k: (v, dtype) for k, v in W.items()})
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        with open(os.path.join(out, "tokenizer.json"), "w") as f:
            json.dump(tj, f, ensure_ascii=False)
        with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
            json.dump(tcfg, f, indent=2)
        g = random.Random(seed)
        seqs = [[1] + [g.randrange(3, vocab) for _ in range(n - 1)] for n in (2, 9, 23, 40)]
        entries = []
        for ids in seqs:
            fwd = gemma_forward_logprobs if cfg["architectures"][0].startswith("Gemma") else (lambda c, w_, i_: hf_forward_logprobs(name, c, w_, i_))
            lp = fwd(cfg, W, ids)
            # Entropy of the next-token distribution at each scored position, in nats:
            # H = -sum_v p_v log p_v from the float64 log-softmax (the soft-capped logits where the model caps them).
            ent = -(lp.exp() * lp).sum(dim=-1)
            entries.append({"ids": ids, "logprobs": [lp[t - 1, ids[t]].item() for t in range(1, len(ids))],
                            "entropy": [ent[t - 1].item() for t in range(1, len(ids))]})
        ref = {
            "family": name,
            "architecture": cfg["architectures"][0],
            "source": f"scripts/reference_torch.py hf (PyTorch {torch.__version__}, float64; equations from transformers' modelling files named there)",
            "storage_dtype": dtype,
            "sha256": sha256_file(os.path.join(out, "model.safetensors")),
            "notes": "logprobs[t-1] = log p(ids[t] | ids[:t]) and entropy[t-1] = -sum_v p(v | ids[:t]) log p(v | ids[:t]) for t >= 1, float64 forward on the stored (rounded) weights",
            "sequences": entries,
        }
        with open(os.path.join(out, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1)
        size = sum(os.path.getsize(os.path.join(out, x)) for x in os.listdir(out))
        print(f"{name}: {cfg['architectures'][0]} {dtype}, {len(W)} tensors, folder {size} bytes")


# ==========================================================================
# Greedy decoding reference. Subcommand:
#
#     /usr/bin/python3 scripts/reference_torch.py greedy [--out tests/fixtures/greedy-reference.json]
#
# For stories15M (a short prompt) and every family of `hf` (the fixture's weights, rebuilt from
# the same seed and checked against the fixture's sha256), a float64 greedy loop: the whole
# sequence is re-run at each step (no KV cache, the plainest form), the next id is the argmax of
# the float64 log-probs (the lowest id on ties, torch.argmax's rule on CPU). Each step also records
# the margin (top-1 minus top-2 log-prob) so a test can tell a real divergence from a near-tie.
# ==========================================================================

GREEDY_PROMPT = "Once upon a time, there was a little dog named Max. He"
GREEDY_NEW = 20


def greedy_loop(step_logprobs, ids, n_new):
    ids = list(ids)
    out, margins = [], []
    for _ in range(n_new):
        lp = step_logprobs(ids)
        top = torch.topk(lp, 2)
        nxt = int(torch.argmax(lp))
        out.append(nxt)
        margins.append(sig(float(top.values[0] - top.values[1]), 4))
        ids.append(nxt)
    return out, margins


def greedy_main(argv):
    ap = argparse.ArgumentParser(prog="reference_torch.py greedy")
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "models", "stories15M"))
    ap.add_argument("--hf-dir", default=os.path.join(ROOT, "tests", "fixtures", "hf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "greedy-reference.json"))
    args = ap.parse_args(argv)
    cases = []
    model_path = os.path.join(args.model_dir, "model.bin")
    if os.path.exists(model_path):
        cfg, w = load_checkpoint(model_path)
        tok = Tokenizer(os.path.join(args.model_dir, "tokenizer.bin"), cfg["vocab_size"])
        prompt = [BOS_ID] + tok.encode(GREEDY_PROMPT)
        gen, margins = greedy_loop(lambda ids: forward_logprobs(cfg, w, ids, torch.float64)[-1], prompt, GREEDY_NEW)
        text = tok.decode_bytes(gen).decode("utf-8", "replace")
        print(f"stories15M: {GREEDY_PROMPT!r} -> {text!r} (min margin {min(margins):.3g})")
        cases.append({"model": "stories15M", "sha256": sha256_file(model_path), "prompt_text": GREEDY_PROMPT,
                      "prompt": prompt, "tokens": gen, "text": text, "margins": margins})
    tj, tcfg, ntok = tiny_tokenizer()
    vocab = ((ntok + 15) // 16) * 16 + 16
    fams = hf_families(vocab)
    for name, (cfg, dtype) in fams.items():
        W = hf_random_weights(cfg, HF_SEEDS[name])
        W = {k: v.to(HF_DT[dtype]).to(torch.float64) for k, v in W.items()}
        st = os.path.join(args.hf_dir, name, "model.safetensors")
        tmp = os.path.join(ROOT, f".greedy-{name}.safetensors")
        st_write(tmp, {k: (v, dtype) for k, v in W.items()})
        same = sha256_file(tmp) == sha256_file(st)
        os.remove(tmp)
        assert same, f"{name}: rebuilt weights differ from {st}: regenerate the fixtures first"
        g = random.Random(HF_SEEDS[name] + 77)
        prompt = [1] + [g.randrange(3, vocab) for _ in range(6)]
        fwd = gemma_forward_logprobs if cfg["architectures"][0].startswith("Gemma") else (lambda c, w_, i_, n=name: hf_forward_logprobs(n, c, w_, i_))
        # 24 new tokens: past the fixtures' sliding windows (8) so the window matters while decoding.
        gen, margins = greedy_loop(lambda ids: fwd(cfg, W, ids)[-1], prompt, 24)
        print(f"{name}: {prompt} -> {gen} (min margin {min(margins):.3g})")
        cases.append({"model": name, "sha256": sha256_file(st), "prompt": prompt, "tokens": gen, "margins": margins})
    out = {
        "source": f"scripts/reference_torch.py greedy (PyTorch {torch.__version__}, float64)",
        "notes": "tokens = greedy continuation of prompt (argmax of the float64 log-probs, full re-run per step); "
                 "margins[i] = top-1 minus top-2 log-prob at step i",
        "cases": cases,
    }
    with open(args.out, "w") as f:
        f.write(to_json(out))
    print(f"wrote {args.out}")


# ---- Rating-prompt signals (docs/signals.md "Rating prompts"; src/signals/rating.ts) ----
# The prompts below are copies of the engine's defaults (tests/signals.test.ts checks that they
# still equal src/signals/rating.ts); everything else — tokenizer, forward, the formulas — is
# this script's own.

SIGNAL_ASK = """###
Instruction: {instruction}
Response: {response}
###
Does the previous example, demarcated within ### and ###, contain an informative signal for training a large language model to follow instructions? An informative example is well formatted, answers the instruction correctly and helpfully, and contains no harmful content.
OPTIONS:
- yes
- no
ANSWER:"""

SIGNAL_RATINGS = [
    """Rate the response to the instruction on a scale from 1 to {k} for how accurately and helpfully it follows the instruction; answer with the number only.
Instruction: {instruction}
Response: {response}
The answer is:""",
    """Give the assistant a score between 1 and {k}, where {k} means the response follows the instruction perfectly and is fully correct.
Instruction: {instruction}
Response: {response}
The answer is:""",
    """How good is this answer? Judge its correctness and adherence to the instruction with one score from 1 (poor) to {k} (excellent).
Instruction: {instruction}
Response: {response}
The answer is:""",
]

SIGNAL_PAIRS = [
    {"instruction": "Tell me about the dog.", "output": "The dog was big and brown. He liked to run in the park with Lily."},
    {"instruction": "What did Tom find in the garden?", "output": "Tom found a red ball under the tree."},
    {"instruction": "Write one happy sentence.", "output": "blue blue blue the the the"},
]


def signal_fill(t, x, y, k):
    return re.sub(r"\{(instruction|response|k)\}", lambda m: x if m.group(1) == "instruction" else y if m.group(1) == "response" else str(k), t)


def signal_answer_token(tok, context, answer):
    a, b = tok.encode(context), tok.encode(context + answer)
    if len(b) == len(a) + 1 and b[:len(a)] == a:
        return b[len(a)]
    for text in (answer, " " + answer):
        ids = tok.encode(text)
        if len(ids) == 1:
            return ids[0]
    raise ValueError(f"answer {answer!r} is more than one token")


def signal_rating(lp):
    """DEITA expected score and SelectIT token-level score from the log-probs of "1".."k"."""
    lp = torch.tensor(lp, dtype=torch.float64)
    p = torch.softmax(lp, 0)
    k = len(lp)
    expected = float((p * torch.arange(1, k + 1, dtype=torch.float64)).sum())
    best = int(torch.argmax(p))
    token = (best + 1) * float((p[best] - p).sum()) / (k - 1)
    return expected, token


def signals_main(argv):
    ap = argparse.ArgumentParser(prog="reference_torch.py signals")
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "models", "stories15M"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "signals-reference.json"))
    args = ap.parse_args(argv)
    model_path = os.path.join(args.model_dir, "model.bin")
    cfg, w = load_checkpoint(model_path)
    tok = Tokenizer(os.path.join(args.model_dir, "tokenizer.bin"), cfg["vocab_size"])
    scale, alpha = 5, 0.2
    last = lambda text: forward_logprobs(cfg, w, [BOS_ID] + tok.encode(text), torch.float64)[-1]
    pairs = []
    for pr in SIGNAL_PAIRS:
        x, y = pr["instruction"], pr["output"]
        ask = signal_fill(SIGNAL_ASK, x, y, scale)
        yes = signal_answer_token(tok, ask, "yes")
        ask_llm = float(last(ask)[yes])
        exp, toks, cands = [], [], []
        for t in SIGNAL_RATINGS:
            text = signal_fill(t, x, y, scale)
            c = [signal_answer_token(tok, text, str(j + 1)) for j in range(scale)]
            row = last(text)
            e, tk = signal_rating([float(row[i]) for i in c])
            exp.append(e); toks.append(tk); cands.append(c)
        e, tk = torch.tensor(exp, dtype=torch.float64), torch.tensor(toks, dtype=torch.float64)
        pairs.append({
            "instruction": x, "output": y, "yes_id": yes, "rating_ids": cands,
            "ask_llm": ask_llm, "rating": float(e.mean()), "rating_var": float(e.var(unbiased=False)),
            "selectit": float(tk.mean() / (1 + alpha * tk.std(unbiased=False))),
        })
        print(pairs[-1])
    # Selective IFD (T-SHIRT): PMI_t = log p(y_t) - log p(y_t | x); concord's default stories15M
    # forward template "{x}{y}": [BOS] + encode(x) + encode(y) against [BOS] + encode(y).
    pmis = []
    for pr in SIGNAL_PAIRS:
        xi, yi = tok.encode(pr["instruction"]), tok.encode(pr["output"])
        cond = token_logprobs(cfg, w, [BOS_ID] + xi + yi, torch.float64)[len(xi):]
        unc = token_logprobs(cfg, w, [BOS_ID] + yi, torch.float64)
        pmis.append((unc - cond).tolist())
    # T-SHIRT's threshold: the (1 - 0.5) percentile of |PMI| over every response token; taken here
    # as the midpoint of the two middle values so that no token sits on it.
    a = sorted(abs(v) for p_ in pmis for v in p_)
    mid = len(a) // 2
    tau = (a[mid - 1] + a[mid]) / 2
    assert a[mid] - a[mid - 1] > 1e-4, "two |PMI| values straddle the threshold too closely"
    for pr, pmi in zip(pairs, pmis):
        kept = [v for v in pmi if abs(v) > tau]
        pr["pmi"] = pmi
        pr["sifd"] = math.exp(sum(kept) / max(len(kept), 1))
        pr["sifd_tokens"] = len(kept)
        pr["ifd"] = math.exp(sum(pmi) / len(pmi))
    # Token Cleaning: loss under the model − loss under a reference model, on the forward sequence.
    # The reference here is stories15M with its linear and classifier weights rounded through f16
    # (the engine's `f16: true` CPU twin rounds the same tensors; the embedding table stays f32).
    wr = {k: (v.to(torch.float16).to(torch.float32) if k in ("wq", "wk", "wv", "wo", "w1", "w2", "w3") else v) for k, v in w.items()}
    wr["cls"] = w["cls"].to(torch.float16).to(torch.float32)
    for pr in pairs:
        xi, yi = tok.encode(pr["instruction"]), tok.encode(pr["output"])
        ids = [BOS_ID] + xi + yi
        base = token_logprobs(cfg, w, ids, torch.float64)[len(xi):]
        refl = token_logprobs(cfg, wr, ids, torch.float64)[len(xi):]
        diff = (-base + refl).tolist()
        pr["min_abs_diff"] = min(abs(d) for d in diff)  # below ~1e-5 a twin's f32 sums may flip a sign
        pr["ref_logp"] = float(refl.mean())
        pr["tc_diff"] = sum(diff) / len(diff)
        pr["tc_positive"] = sum(1 for d in diff if d > 0) / len(diff)
        pr["diff"] = diff
    out = {
        "source": f"scripts/reference_torch.py signals (PyTorch {torch.__version__}, float64)",
        "sifd_threshold": tau,
        "model": "stories15M", "sha256": sha256_file(model_path), "scale": scale, "alpha": alpha,
        "ask_template": SIGNAL_ASK, "rating_templates": SIGNAL_RATINGS, "pairs": pairs,
    }
    with open(args.out, "w") as f:
        f.write(to_json(out))
    print(f"wrote {args.out}")


# ---- In-context influence (docs/signals.md "In-context influence"; src/signals/icl.ts) ----
# NUGGETS (github pldlgb/nuggets, instruction_main.py + tasks/alpaca.py post_process) and
# Data-Juicer's in_context_influence_filter. Every sequence is one plain forward pass from its
# first token (no cache): zero-shot [BOS] + x_a + y_a, one-shot [BOS] + x_z + y_z + x_a + y_a
# (concord's default stories15M template "{x}{y}"), the response y_a's tokens scored.

ICL_ANCHORS = [
    {"instruction": "Tell me a story about a cat.", "output": "Once upon a time, there was a little cat named Tom. He liked to play with a ball."},
    {"instruction": "Where did Lily go?", "output": "Lily went to the park with her mom. They saw a big tree."},
    {"instruction": "Say something kind.", "output": "You are a good friend and I like to play with you."},
]


def icl_main(argv):
    ap = argparse.ArgumentParser(prog="reference_torch.py icl")
    ap.add_argument("--model-dir", default=os.path.join(ROOT, "models", "stories15M"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "icl-reference.json"))
    args = ap.parse_args(argv)
    model_path = os.path.join(args.model_dir, "model.bin")
    cfg, w = load_checkpoint(model_path)
    tok = Tokenizer(os.path.join(args.model_dir, "tokenizer.bin"), cfg["vocab_size"])

    def response_logprobs(prefix, x, y):
        xi, yi = tok.encode(x), tok.encode(y)
        ids = [BOS_ID] + prefix + xi + yi
        lp = token_logprobs(cfg, w, ids, torch.float64)  # lp[t - 1] scores ids[t]
        s = 1 + len(prefix) + len(xi)
        r = lp[s - 1:]
        assert len(r) == len(yi)
        return float(r.sum()), float(r.mean())

    zero = [response_logprobs([], a["instruction"], a["output"]) for a in ICL_ANCHORS]
    cands = []
    for pr in SIGNAL_PAIRS:
        prefix = tok.encode(pr["instruction"]) + tok.encode(pr["output"])
        one = [response_logprobs(prefix, a["instruction"], a["output"]) for a in ICL_ANCHORS]
        A = len(ICL_ANCHORS)
        cands.append({
            "instruction": pr["instruction"], "output": pr["output"],
            "one_sum": [o[0] for o in one], "one_mean": [o[1] for o in one],
            # NUGGETS: np.greater(lm_log_p_icl, lm_log_p_zero) averaged over the anchors (lm_log_p: the sum)
            "icl_gold": sum(1 for o, z in zip(one, zero) if o[0] > z[0]) / A,
            "min_abs_gap": min(abs(o[0] - z[0]) for o, z in zip(one, zero)),
            "icl_delta": sum(o[1] - z[1] for o, z in zip(one, zero)) / A,
            # Data-Juicer: loss_wo_demo / loss_w_demo, mean token loss of the anchor's response
            "icl_ratio": sum((-z[1]) / (-o[1]) for o, z in zip(one, zero)) / A,
        })
        print(cands[-1])
    out = {
        "source": f"scripts/reference_torch.py icl (PyTorch {torch.__version__}, float64, no KV cache)",
        "model": "stories15M", "sha256": sha256_file(model_path),
        "anchors": ICL_ANCHORS, "zero_sum": [z[0] for z in zero], "zero_mean": [z[1] for z in zero],
        "candidates": cands,
    }
    with open(args.out, "w") as f:
        f.write(to_json(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "icl":
        sys.exit(icl_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "hf":
        sys.exit(hf_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "signals":
        sys.exit(signals_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "greedy":
        sys.exit(greedy_main(sys.argv[2:]))
    sys.exit(main())
