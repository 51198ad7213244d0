#!/usr/bin/env python3
"""The PyTorch peers of the GPU benchmark (.gpu/peer.py; run by .gpu/run.sh beside concord).

  peer.py gen --shapes shapes.json --shape NAME --seed S --out DIR [--max-len N]
      A model of that shape (config.json + model.safetensors, Hugging Face layout) with RANDOM
      weights drawn from the seed, on the GPU when there is one. Random weights measure speed only.
      Every weight is bf16 AND exactly representable in f16 (bf16 values with |w| >= 2^-14; smaller
      ones are set to 0), so concord's f16 storage, the fp32 peers and the bf16 peers all hold
      identical numbers.

  peer.py score --model DIR --seqs seqs.json --out peer.json [--modes a,b32,b16,c32,c16]
      The same sequences concord scores (seqs.json from `concord-gpu.mjs seqs`: concord's tokenizer,
      templates, truncation), through Hugging Face transformers on the same device:
        a    the Cherry-LLM / Superfiltering way: batch size 1, one forward pass per likelihood
             (four per pair), full logits, log_softmax, fp32 (their scripts load the default dtype)
        b32  batched four-pass: sequences sorted by length, right-padded batches, fp32
        b16  the same in bf16
        c32  batched with concord's two-pass plan (unconditionals read from the prefixes), fp32
        c16  the same in bf16
      log_softmax is taken over fp32 logits (bf16 logits are upcast first, as HF's loss does).
      Where transformers is not installed (the rehearsal on Debian's python3-torch), a small torch
      implementation of the Llama / Qwen2 forward below stands in; the output says which ran.

  peer.py generate --model DIR --prompts decode-concord.json --out peer-decode.json
      Greedy decoding of concord's prompt ids (the `decode` step's JSON: prompts, newTokens) with
      Hugging Face `generate` on the same device, fp32, KV cache on, EOS not stopping (concord
      decodes exactly newTokens): batch 1 (one prompt at a time) and batched (all prompts, left
      padded). Decode time = generate(newTokens) - generate(1 token) (the prefill), so tokens/s
      counts the same newTokens - 1 decode steps as concord's. The torch fallback (no
      transformers) decodes without a cache, recomputing the prefix each step, and says so.
"""

import argparse
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

try:
    import transformers  # noqa: F401
    HAVE_TRANSFORMERS = True
except Exception:  # noqa: BLE001  (absent, or broken install: the fallback is marked in the output)
    HAVE_TRANSFORMERS = False

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}


def device_name():
    if torch.cuda.is_available():
        return "cuda", f"cuda: {torch.cuda.get_device_name(0)}"
    return "cpu", f"cpu ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def sync(dev):
    if dev == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# safetensors without the package (the rehearsal machine may lack it)

def write_safetensors(path, tensors):
    try:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"format": "pt"})
        return
    except ImportError:
        pass
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().view(torch.int16).numpy().tobytes() if t.dtype in (torch.bfloat16, torch.float16) else t.contiguous().numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        buf = bytearray(data[base + s:base + e])
        out[name] = torch.frombuffer(buf, dtype=DTYPES[info["dtype"]]).reshape(info["shape"]) if e > s else torch.zeros(info["shape"], dtype=DTYPES[info["dtype"]])
    return out


# ---------------------------------------------------------------------------------------------
# gen: a random model of a given shape

def hf_tensor_shapes(c):
    d, ff, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd = c.get("head_dim") or d // nh
    qkv_bias = c["architectures"][0] == "Qwen2ForCausalLM"
    out = [("model.embed_tokens.weight", [V, d], "w")]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", [d], "norm"),
                (p + "self_attn.q_proj.weight", [nh * hd, d], "w"),
                (p + "self_attn.k_proj.weight", [nkv * hd, d], "w"),
                (p + "self_attn.v_proj.weight", [nkv * hd, d], "w")]
        if qkv_bias:
            out += [(p + "self_attn.q_proj.bias", [nh * hd], "b"), (p + "self_attn.k_proj.bias", [nkv * hd], "b"), (p + "self_attn.v_proj.bias", [nkv * hd], "b")]
        out += [(p + "self_attn.o_proj.weight", [d, nh * hd], "w"),
                (p + "post_attention_layernorm.weight", [d], "norm"),
                (p + "mlp.gate_proj.weight", [ff, d], "w"),
                (p + "mlp.up_proj.weight", [ff, d], "w"),
                (p + "mlp.down_proj.weight", [d, ff], "w")]
    out.append(("model.norm.weight", [d], "norm"))
    if not c.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", [V, d], "w"))
    return out


def exact_bf16_f16(x):
    """Round to bf16; values too small for f16's normal range become 0 (bf16 with 8 significant
    bits is then exactly representable in f16, whose range they are inside)."""
    y = x.to(torch.bfloat16)
    return torch.where(y.abs() < 2.0 ** -14, torch.zeros_like(y), y)


def gen(args):
    shapes = json.load(open(args.shapes))
    shape = next((s for s in shapes["shapes"] if s["name"] == args.shape), None)
    if shape is None:
        sys.exit(f"peer.py gen: no shape '{args.shape}' in {args.shapes} (have {', '.join(s['name'] for s in shapes['shapes'])})")
    c = dict(shape["config"])
    if args.max_len:
        c["max_position_embeddings"] = args.max_len
    c.update({"torch_dtype": "bfloat16", "use_cache": False, "bos_token_id": 1, "eos_token_id": 2})
    # transformers 5 reads rotary settings from rope_parameters (rope_theta is the legacy key; both are written)
    c["rope_parameters"] = {"rope_type": "default", "rope_theta": c.get("rope_theta", 10000.0)}
    os.makedirs(args.out, exist_ok=True)
    dev, _ = device_name()
    g = torch.Generator(device=dev)
    g.manual_seed(args.seed)
    t0 = time.time()
    tensors, n = {}, 0
    for name, shp, kind in hf_tensor_shapes(c):
        r = torch.randn(shp, generator=g, device=dev, dtype=torch.float32)
        if kind == "w":
            r = r * c.get("initializer_range", 0.02)
        elif kind == "b":
            r = r * 0.02
        else:
            r = 1.0 + 0.05 * r
        tensors[name] = exact_bf16_f16(r).cpu()
        n += r.numel()
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)
    json.dump(c, open(os.path.join(args.out, "config.json"), "w"), indent=1)
    print(f"peer.py gen: {args.shape}: {n / 1e9:.3f} B parameters, RANDOM weights from seed {args.seed} "
          f"(bf16, f16-exact) in {time.time() - t0:.1f} s -> {args.out}", file=sys.stderr)
    json.dump({"shape": args.shape, "seed": args.seed, "params": n, "genS": time.time() - t0}, open(os.path.join(args.out, "gen.json"), "w"))


# ---------------------------------------------------------------------------------------------
# the fallback forward (no transformers): HF Llama / Qwen2 semantics, right padding + causal mask

class TorchCausalLM:
    def __init__(self, model_dir, dtype, dev, tensors=None):
        self.c = json.load(open(os.path.join(model_dir, "config.json")))
        # tensors: a loaded model's state_dict (shared, no copy) for the cross-check of HfCausalLM
        raw = tensors if tensors is not None else read_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.raw = raw
        self.dev = dev
        self.to(dtype)
        arch = self.c["architectures"][0]
        if arch not in ("LlamaForCausalLM", "Qwen2ForCausalLM"):
            raise SystemExit(f"peer.py: the torch fallback runs Llama / Qwen2 only, not {arch}")
        self.name = f"torch fallback forward ({arch} semantics; transformers is not installed here)"

    def to(self, dtype):
        self.dtype = dtype
        self.w = {k: v.to(self.dev, dtype) for k, v in self.raw.items() if v.is_floating_point()}
        return self

    def __call__(self, ids):
        c, w, dt = self.c, self.w, self.dtype
        d, nh, nkv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        hd = c.get("head_dim") or d // nh
        eps, theta = c.get("rms_norm_eps", 1e-6), c.get("rope_theta", 10000.0)
        B, L = ids.shape

        def rms(x, weight):
            h = x.to(torch.float32)
            h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
            return weight * h.to(dt)

        def lin(x, name, bias=None):
            y = x @ w[name].t()
            return y + w[bias] if bias and bias in w else y

        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32, device=self.dev) / hd))
        fr = torch.arange(L, dtype=torch.float32, device=self.dev)[:, None] * inv[None, :]
        emb = torch.cat([fr, fr], -1)
        cos, sin = emb.cos().to(dt), emb.sin().to(dt)

        def rope(x):
            x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
            return x * cos + torch.cat([-x2, x1], -1) * sin

        causal = torch.full((L, L), float("-inf"), device=self.dev).triu(1)
        x = w["model.embed_tokens.weight"][ids]
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            h = rms(x, w[p + "input_layernorm.weight"])
            q = rope(lin(h, p + "self_attn.q_proj.weight", p + "self_attn.q_proj.bias").view(B, L, nh, hd).transpose(1, 2))
            k = rope(lin(h, p + "self_attn.k_proj.weight", p + "self_attn.k_proj.bias").view(B, L, nkv, hd).transpose(1, 2))
            v = lin(h, p + "self_attn.v_proj.weight", p + "self_attn.v_proj.bias").view(B, L, nkv, hd).transpose(1, 2)
            k, v = k.repeat_interleave(nh // nkv, 1), v.repeat_interleave(nh // nkv, 1)
            if hasattr(F, "scaled_dot_product_attention"):
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # torch < 2.0 (Debian bookworm's 1.13)
                s = (q.to(torch.float32) @ k.to(torch.float32).transpose(-1, -2)) / math.sqrt(hd) + causal
                a = (s.softmax(-1) @ v.to(torch.float32)).to(dt)
            x = x + lin(a.transpose(1, 2).reshape(B, L, nh * hd), p + "self_attn.o_proj.weight")
            h = rms(x, w[p + "post_attention_layernorm.weight"])
            x = x + lin(F.silu(lin(h, p + "mlp.gate_proj.weight")) * lin(h, p + "mlp.up_proj.weight"), p + "mlp.down_proj.weight")
        x = rms(x, w["model.norm.weight"])
        head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
        return x @ head.t()


class HfCausalLM:
    def __init__(self, model_dir, dtype, dev):
        from transformers import AutoModelForCausalLM
        kw = {"dtype": dtype} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": dtype}
        self.m = AutoModelForCausalLM.from_pretrained(model_dir, **kw).to(dev).eval()
        self.dtype = dtype
        impl = getattr(self.m.config, "_attn_implementation", "?")
        self.name = f"transformers {transformers.__version__} {type(self.m).__name__} (attention: {impl})"

    def to(self, dtype):
        self.m = self.m.to(dtype)
        self.dtype = dtype
        return self

    def __call__(self, ids, mask=None):
        return self.m(input_ids=ids, attention_mask=mask, use_cache=False).logits


def load(model_dir, dtype, dev):
    if HAVE_TRANSFORMERS and os.environ.get("CONCORD_PEER_FALLBACK") != "1":
        return HfCausalLM(model_dir, dtype, dev)
    return TorchCausalLM(model_dir, dtype, dev)


def cross_check(model, model_dir, seq, dev):
    """transformers against the small reference forward above, on one sequence in fp32, over the same
    weights (the loaded model's own tensors): catches a config that transformers reads differently
    (rotary base, tied head, biases) before any figure is taken."""
    if not isinstance(model, HfCausalLM):
        return None
    ref = TorchCausalLM(model_dir, torch.float32, dev, tensors=dict(model.m.state_dict()))
    ids = torch.tensor([seq["ids"]], device=dev)
    with torch.no_grad():
        a = forward_logits(model, ids, [ids.shape[1]], dev)[0].float().log_softmax(-1)
        b = ref(ids)[0].float().log_softmax(-1)
    tgt = ids[0, 1:, None]
    d = (a[:-1].gather(-1, tgt) - b[:-1].gather(-1, tgt)).abs().max().item()
    del ref
    return {"maxAbsDiffLogprob": d, "tokens": int(ids.shape[1]), "ok": d <= 1e-3}


# ---------------------------------------------------------------------------------------------
# scoring

def forward_logits(model, ids, lengths, dev):
    """[B, L, V] logits of a right-padded batch."""
    if isinstance(model, HfCausalLM):
        L = ids.shape[1]
        mask = (torch.arange(L, device=dev)[None, :] < torch.tensor(lengths, device=dev)[:, None]).long()
        return model(ids, mask)
    return model(ids)


def score_batch1(model, pairs, plan, dev):
    """Mode a: one forward pass per likelihood, full logits, log_softmax (the Cherry/Superfiltering way)."""
    out, tokens = [], 0
    for p in pairs:
        means = {}
        for s in p[plan]:
            ids = torch.tensor([s["ids"]], device=dev)
            with torch.no_grad():
                lp = forward_logits(model, ids, [len(s["ids"])], dev)[0].float().log_softmax(-1)
            tokens += len(s["ids"])
            for r in s["reads"]:
                a, b = r["span"]
                tgt = ids[0, a:b]
                means[r["quantity"]] = lp[a - 1:b - 1].gather(-1, tgt[:, None]).sum().item() / (b - a)
        out.append(means)
    return out, tokens, tokens


def score_batched(model, pairs, plan, dev, budget):
    """Modes b, c: all sequences sorted by length, packed into right-padded batches of at most
    `budget` padded tokens, full logits, log_softmax over fp32 logits, gather."""
    seqs = [(len(s["ids"]), k, s) for k, p in enumerate(pairs) for s in p[plan]]
    seqs.sort(key=lambda t: t[0])
    sums = [dict() for _ in pairs]
    tokens = padded = 0
    i = 0
    while i < len(seqs):
        L = seqs[i][0]
        j = i
        while j < len(seqs) and seqs[j][0] * (j - i + 1) <= budget:
            j += 1
        j = max(j, i + 1)
        batch = seqs[i:j]
        L = batch[-1][0]
        ids = torch.zeros((len(batch), L), dtype=torch.long)
        for b, (n, _, s) in enumerate(batch):
            ids[b, :n] = torch.tensor(s["ids"])
        ids = ids.to(dev)
        with torch.no_grad():
            lp = forward_logits(model, ids, [t[0] for t in batch], dev).float().log_softmax(-1)
        for b, (n, k, s) in enumerate(batch):
            for r in s["reads"]:
                a, e = r["span"]
                sums[k][r["quantity"]] = lp[b, a - 1:e - 1].gather(-1, ids[b, a:e][:, None]).sum().item() / (e - a)
        tokens += sum(t[0] for t in batch)
        padded += len(batch) * L
        i = j
    return sums, tokens, padded


MODES = {
    "a": ("transformers, batch 1, 4 passes, fp32 (Cherry/Superfiltering way)", "four", torch.float32, False),
    "b32": ("transformers, batched (length-sorted, padded), 4 passes, fp32", "four", torch.float32, True),
    "b16": ("transformers, batched (length-sorted, padded), 4 passes, bf16", "four", torch.bfloat16, True),
    "c32": ("transformers, batched, concord's 2-pass plan, fp32", "two", torch.float32, True),
    "c16": ("transformers, batched, concord's 2-pass plan, bf16", "two", torch.bfloat16, True),
}


def score(args):
    dev, dname = device_name()
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
        torch.backends.cudnn.allow_tf32 = False
    seqs = json.load(open(args.seqs))
    pairs = seqs["pairs"]
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            sys.exit(f"peer.py: unknown mode '{m}' (have {', '.join(MODES)})")
    # fp32 modes first, then the model is cast once to bf16 (the weights are bf16-exact).
    modes.sort(key=lambda m: MODES[m][2] != torch.float32)
    t0 = time.time()
    model = load(args.model, torch.float32, dev)
    load_s = time.time() - t0
    res = {"implementation": model.name, "fallback": isinstance(model, TorchCausalLM), "torch": torch.__version__,
           "device": dname, "loadS": load_s, "budget": args.batch_tokens, "modes": []}
    print(f"peer.py: {model.name} on {dname}, loaded in {load_s:.1f} s", file=sys.stderr)
    try:
        res["crossCheck"] = cross_check(model, args.model, pairs[0]["four"][0], dev) if pairs else None
        if res["crossCheck"]:
            print(f"peer.py: transformers vs the reference torch forward (fp32, one sequence): max |Δ log p| {res['crossCheck']['maxAbsDiffLogprob']:.2e}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001
        res["crossCheck"] = {"error": f"{type(e).__name__}: {e}", "ok": False}
    deadline = time.time() + args.time_limit if args.time_limit else None
    for m in modes:
        desc, plan, dtype, batched = MODES[m]
        if not HAVE_TRANSFORMERS or isinstance(model, TorchCausalLM):
            desc = desc.replace("transformers", "torch fallback")
        if model.dtype != dtype:
            model.to(dtype)
        entry = {"mode": m, "desc": desc, "dtype": "fp32" if dtype == torch.float32 else "bf16", "plan": plan, "batched": batched}
        if deadline and time.time() > deadline:
            entry["error"] = f"skipped: the peer step's time limit ({args.time_limit} s) was reached"
            res["modes"].append(entry)
            continue
        try:
            run = (lambda ps: score_batched(model, ps, plan, dev, args.batch_tokens)) if batched else (lambda ps: score_batch1(model, ps, plan, dev))
            run(pairs[:1])  # warm-up (kernel selection, allocator), not timed
            sync(dev)
            t = time.time()
            means, tokens, padded = run(pairs)
            sync(dev)
            ms = (time.time() - t) * 1000
            entry.update({"pairs": len(pairs), "ms": ms, "lmTokens": tokens, "paddedTokens": padded,
                          "scores": [{"fwd": s["fwd"], "rev": s["rev"], "y": s["y"], "x": s["x"]} for s in means]})
            print(f"peer.py: {m} ({desc}): {len(pairs)} pairs in {ms / 1000:.2f} s = {len(pairs) / (ms / 1000):.2f} pairs/s", file=sys.stderr)
        except Exception as e:  # noqa: BLE001  (one failing mode must not lose the others)
            entry["error"] = f"{type(e).__name__}: {e}"
            print(f"peer.py: {m} FAILED: {entry['error']}", file=sys.stderr)
            if dev == "cuda":
                torch.cuda.empty_cache()
        res["modes"].append(entry)
        json.dump(res, open(args.out, "w"))
    if dev == "cuda":
        res["cudaPeakBytes"] = torch.cuda.max_memory_allocated()
    json.dump(res, open(args.out, "w"))
    return 0 if all("error" not in e for e in res["modes"]) else 4


# ---------------------------------------------------------------------------------------------
# generate: greedy decoding of concord's prompts

def greedy_hf(model, prompts, n, dev):
    """HF generate, greedy, n new tokens per prompt, all prompts in one left-padded batch."""
    m = model.m
    m.generation_config.eos_token_id = None  # concord decodes exactly n tokens
    m.generation_config.pad_token_id = 0
    L = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), L), dtype=torch.long)
    mask = torch.zeros((len(prompts), L), dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, L - len(p):] = torch.tensor(p)
        mask[b, L - len(p):] = 1
    with torch.no_grad():
        out = m.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=n,
                         do_sample=False, use_cache=True, eos_token_id=None, pad_token_id=0)
    return [row[L:].tolist() for row in out]


def greedy_fallback(model, prompts, n, dev):
    """No transformers: greedy without a KV cache (the whole prefix each step), right padded."""
    seqs = [list(p) for p in prompts]
    with torch.no_grad():
        for _ in range(n):
            L = max(len(s) for s in seqs)
            ids = torch.zeros((len(seqs), L), dtype=torch.long)
            for b, s in enumerate(seqs):
                ids[b, :len(s)] = torch.tensor(s)
            logits = model(ids.to(dev))
            for b, s in enumerate(seqs):
                s.append(int(logits[b, len(s) - 1].float().argmax().item()))
    return [s[len(p):] for s, p in zip(seqs, prompts)]


def generate(args):
    dev, dname = device_name()
    if dev == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    spec = json.load(open(args.prompts))
    prompts, n = spec["prompts"], int(spec["newTokens"])
    model = load(args.model, torch.float32, dev)
    fallback = isinstance(model, TorchCausalLM)
    run = (lambda ps, k: greedy_fallback(model, ps, k, dev)) if fallback else (lambda ps, k: greedy_hf(model, ps, k, dev))
    name = model.name + (" — greedy loop WITHOUT a KV cache" if fallback else " generate (greedy, KV cache)")
    res = {"implementation": name, "fallback": fallback, "torch": torch.__version__, "device": dname, "newTokens": n, "runs": []}
    print(f"peer.py generate: {name} on {dname}", file=sys.stderr)

    def timed(ps, k):
        sync(dev)
        t = time.time()
        toks = run(ps, k)
        sync(dev)
        return toks, (time.time() - t) * 1000

    try:
        run(prompts[:1], 2)  # warm-up, not timed
        for group in [[[p] for p in prompts], [prompts]]:
            tokens, pre_ms, all_ms = [], 0.0, 0.0
            for ps in group:
                _, t1 = timed(ps, 1)
                toks, tn = timed(ps, n)
                tokens += toks
                pre_ms += t1
                all_ms += tn
            batch = len(group[0])
            decode_ms = max(all_ms - pre_ms, 1e-6)
            steps = (n - 1) * len(group)
            res["runs"].append({"batch": batch, "tokens": tokens, "prefillMs": pre_ms, "decodeMs": decode_ms, "decodeSteps": steps,
                                "tokS": batch * steps / (decode_ms / 1000)})
            print(f"peer.py generate: batch {batch}: {batch * steps / (decode_ms / 1000):.1f} new tokens/s (decode after the prefill)", file=sys.stderr)
            json.dump(res, open(args.out, "w"))
    except Exception as e:  # noqa: BLE001
        res["error"] = f"{type(e).__name__}: {e}"
        print(f"peer.py generate FAILED: {res['error']}", file=sys.stderr)
    json.dump(res, open(args.out, "w"))
    return 4 if "error" in res else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--shapes", required=True)
    g.add_argument("--shape", required=True)
    g.add_argument("--seed", type=int, default=1234)
    g.add_argument("--out", required=True)
    g.add_argument("--max-len", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("--model", required=True)
    s.add_argument("--seqs", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--modes", default="a,b32,b16,c32,c16")
    s.add_argument("--batch-tokens", type=int, default=8192)
    s.add_argument("--time-limit", type=float, default=0)
    s.add_argument("--threads", type=int, default=0)
    gg = sub.add_parser("generate")
    gg.add_argument("--model", required=True)
    gg.add_argument("--prompts", required=True)
    gg.add_argument("--out", required=True)
    a = ap.parse_args()
    if getattr(a, "threads", 0):
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    sys.exit(gen(a) if a.cmd == "gen" else generate(a) if a.cmd == "generate" else score(a))


if __name__ == "__main__":
    main()
