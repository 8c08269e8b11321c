#!/usr/bin/python3
"""Float64 reference for `mamba2 perplexity`: the same three protocols, written from their
descriptions (lm-evaluation-harness's wikitext task, Hugging Face's strided perplexity guide,
one stateful pass) without reading the C++ code, over tools/mamba2_ref.py's forward.

  perplexity_ref.py -m DIR -f FILE --protocol lm-eval-wikitext [--ctx 2048] [--max-articles N]
  perplexity_ref.py -m DIR -f FILE --protocol sliding --ctx N [--stride S]
  perplexity_ref.py -m DIR -f FILE --protocol stateful
options: --tokenizer FILE (default DIR/tokenizer.json), --ids FILE (the C++ --dump-ids output),
         --json OUT, --check-logits FILE (a C++ --save-logits file to compare row by row)

Tokenization: tools/bpe_train.py's independent byte-level BPE encoder when it supports the
tokenizer.json (plain added tokens only); the ids must then equal --ids when given. Otherwise
(e.g. GPT-NeoX's space-run added tokens) --ids is required, and every document's ids must decode
(own byte-level decoder over the json's vocab) to exactly the text this script prepared.

Wikitext: the raw file is split into articles as EleutherAI/wikitext_document_level does, each
article is detokenised by the task's rules, words and bytes are counted on the original article.
"""

import argparse
import json
import math
import os
import re
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mamba2_ref  # noqa: E402


# ---------------------------------------------------------------------------
# WikiText articles and the task's detokeniser

def heading_key(line):
    """The line as the document builder tests it: spaced '=' runs squeezed, then stripped."""
    return line.replace("= = =", "===").replace("= =", "==").strip()


def is_article_heading(line):
    key = heading_key(line)
    return key.startswith("= ") and key.endswith(" =")


def split_articles(raw):
    """Raw WikiText -> list of article pages (original text, lines joined by newlines)."""
    lines = raw.split("\n")
    heads = [i for i, line in enumerate(lines) if is_article_heading(line)]
    if not heads:
        return []
    pages = []
    bounds = [0] + heads + [len(lines)]
    for k in range(len(bounds) - 1):
        page = "\n".join(lines[bounds[k]:bounds[k + 1]])
        last = k == len(bounds) - 2
        if last or page.strip():
            pages.append(page)
    return pages


# (kind, pattern, replacement) in the order the task applies them.
DETOKENIZE_RULES = [
    ("str", "s '", "s'"),
    ("re", r"/' [0-9]/", r"/'[0-9]/"),
    ("str", " @-@ ", "-"),
    ("str", " @,@ ", ","),
    ("str", " @.@ ", "."),
    ("str", " : ", ": "),
    ("str", " ; ", "; "),
    ("str", " . ", ". "),
    ("str", " ! ", "! "),
    ("str", " ? ", "? "),
    ("str", " , ", ", "),
    ("re", r"\(\s*([^\)]*?)\s*\)", r"(\1)"),
    ("re", r"\[\s*([^\]]*?)\s*\]", r"[\1]"),
    ("re", r"{\s*([^}]*?)\s*}", r"{\1}"),
    ("re", r"\"\s*([^\"]*?)\s*\"", r'"\1"'),
    ("re", r"'\s*([^']*?)\s*'", r"'\1'"),
    ("str", "= = = =", "===="),
    ("str", "= = =", "==="),
    ("str", "= =", "=="),
    ("str", " \u00b0 ", "\u00b0"),
    ("str", " \n", "\n"),
    ("str", "\n ", "\n"),
    ("str", " N ", " 1 "),
    ("str", " 's", "'s"),
]


def detokenize(page):
    for kind, pat, rep in DETOKENIZE_RULES:
        page = page.replace(pat, rep) if kind == "str" else re.sub(pat, rep, page)
    return page


def count_words(page):
    return len(re.split(r"\s+", page))


# ---------------------------------------------------------------------------
# Tokenization (independent of the C++ tokenizer)

def gpt2_byte_decoder():
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


class Detok:
    """Byte-level decoder over a tokenizer.json (added tokens decode to their content)."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        self.id_to_token = {i: t for t, i in j["model"]["vocab"].items()}
        self.added = {t["id"]: t["content"] for t in j["added_tokens"]}
        self.bytes_of = gpt2_byte_decoder()
        self.json = j

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            if i in self.added:
                out += self.added[i].encode("utf-8")
            else:
                out += bytes(self.bytes_of[c] for c in self.id_to_token[i])
        return out.decode("utf-8")


def make_encoder(tokenizer_path):
    """bpe_train.Tokenizer's encode when it supports this tokenizer.json, else None."""
    try:
        import bpe_train
        return bpe_train.Tokenizer.from_file(tokenizer_path).encode
    except (AssertionError, ImportError, KeyError):
        return None


# ---------------------------------------------------------------------------
# Protocols. A window is (fed tokens, targets): the last len(targets) positions of the fed
# tokens are scored, each predicting the next target.

def rolling_windows(tokens, prefix, max_len):
    """lm-eval loglikelihood_rolling with context_len=1 and disjoint windows."""
    n = len(tokens)
    if n == 0:
        return []
    first = min(max_len, n)
    out = [([prefix] + tokens[:first - 1], tokens[:first])]
    done = first
    while done < n:
        pred = tokens[done:done + max_len]
        end = done + len(pred)
        context = tokens[end - max_len - 1:done]  # one token, or more for a short last window
        whole = context + pred
        out.append((whole[-(max_len + 1):][:-1], pred))
        done = end
    return out


def sliding_windows(tokens, ctx, stride):
    """Hugging Face perplexity guide: labels of already-scored positions masked to -100."""
    n = len(tokens)
    out = []
    prev_end = 0
    begin = 0
    while begin < n:
        end = min(begin + ctx, n)
        trg_len = end - prev_end
        window = tokens[begin:end]
        labels = [-100] * (len(window) - trg_len) + window[len(window) - trg_len:]
        # The model shifts labels by one: logits[i] predicts labels[i + 1].
        pairs = [(i, labels[i + 1]) for i in range(len(window) - 1) if labels[i + 1] != -100]
        if pairs:
            first = pairs[0][0]
            assert [p for p, _ in pairs] == list(range(first, len(window) - 1))
            out.append((window[:len(window) - 1], [t for _, t in pairs]))
        prev_end = end
        if end == n:
            break
        begin += stride
    return out


def log_softmax(logits):
    m = logits.max(axis=-1, keepdims=True)
    return logits - (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))


def score_window(model, fed, targets, rows_out=None):
    logp = log_softmax(model.forward(fed))[len(fed) - len(targets):]
    if rows_out is not None:
        rows_out.append(logp)
    return float(logp[np.arange(len(targets)), targets].sum())


def score_stateful(model, tokens, piece=512, rows_out=None):
    state, total = None, 0.0
    fed, targets = tokens[:-1], tokens[1:]
    for s in range(0, len(fed), piece):
        logits, state = model.forward(fed[s:s + piece], initial_state=state, return_state=True)
        logp = log_softmax(logits)
        if rows_out is not None:
            rows_out.append(logp)
        total += float(logp[np.arange(len(logp)), targets[s:s + piece]].sum())
    return total


# ---------------------------------------------------------------------------
# The C++ --save-logits file (format in src/engine/perplexity_logits.h)

def read_logprob_file(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"M2LOGPRB":
        raise ValueError(f"{path}: bad magic")
    version, dtype, n_rows, vocab_rows, sum_nll, _ = struct.unpack_from("<IIQQdQ", raw, 8)
    if version != 1 or dtype not in (0, 1):
        raise ValueError(f"{path}: version {version} dtype {dtype}")
    targets = np.frombuffer(raw, "<i4", n_rows, 64)
    rows_off = (64 + 4 * n_rows + 63) // 64 * 64
    vals = np.frombuffer(raw, "<f4" if dtype == 0 else "<f2", n_rows * vocab_rows, rows_off)
    if rows_off + vals.nbytes != len(raw):
        raise ValueError(f"{path}: size {len(raw)} != {rows_off + vals.nbytes}")
    return targets, vals.reshape(n_rows, vocab_rows).astype(np.float64), sum_nll


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("--tokenizer")
    ap.add_argument("--protocol", choices=["lm-eval-wikitext", "sliding", "stateful"], required=True)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--stride", type=int, default=None)
    ap.add_argument("--max-articles", type=int, default=0)
    ap.add_argument("--prefix-token", type=int, default=0)
    ap.add_argument("--ids", help="the C++ --dump-ids file")
    ap.add_argument("--json", help="write the metrics here")
    ap.add_argument("--check-logits", help="C++ --save-logits file: compare every row with the reference")
    args = ap.parse_args(argv)

    tok_path = args.tokenizer or os.path.join(args.model, "tokenizer.json")
    with open(args.file, encoding="utf-8") as f:  # text mode: universal newlines, as the dataset script
        text = f.read()
    if args.protocol == "lm-eval-wikitext":
        pages = split_articles(text)
        if args.max_articles:
            pages = pages[:args.max_articles]
        texts = [detokenize(p) for p in pages]
    else:
        with open(args.file, "rb") as f:  # the C++ side tokenizes the file's bytes as they are
            texts = [f.read().decode("utf-8")]
        pages = None

    detok = Detok(tok_path)
    encode = make_encoder(tok_path)
    dumped = None
    if args.ids:
        with open(args.ids) as f:
            dumped = json.load(f)["docs"]
        if len(dumped) != len(texts):
            sys.exit(f"FAIL: --ids has {len(dumped)} documents, the reference {len(texts)}")
    docs = []
    for k, t in enumerate(texts):
        if encode is not None:
            ids = encode(t)
            if dumped is not None and dumped[k] != ids:
                diff = next((i for i, (a, b) in enumerate(zip(dumped[k], ids)) if a != b), min(len(ids), len(dumped[k])))
                sys.exit(f"FAIL: document {k}: C++ ids differ from the reference encoder at token {diff}")
        else:
            if dumped is None:
                sys.exit("this tokenizer.json needs --ids (the reference encoder supports plain added tokens only)")
            ids = dumped[k]
        if detok.decode(ids) != t:
            sys.exit(f"FAIL: document {k}: the ids do not decode to the reference text")
        docs.append(ids)
    if args.protocol != "lm-eval-wikitext" and dumped is not None:
        # --max-tokens on the C++ side: compare on the prefix it used.
        docs = [docs[0][:len(dumped[0])]]

    model = mamba2_ref.load_model(args.model)
    keep_rows = [] if args.check_logits else None
    sum_ll, n_scored, all_targets = 0.0, 0, []
    if args.protocol == "stateful":
        sum_ll = score_stateful(model, docs[0], rows_out=keep_rows)
        n_scored = len(docs[0]) - 1
        all_targets = docs[0][1:]
    else:
        for ids in docs:
            if args.protocol == "lm-eval-wikitext":
                wins = rolling_windows(ids, args.prefix_token, args.ctx)
            else:
                stride = args.stride or max(1, args.ctx // 2)
                wins = sliding_windows(ids, args.ctx, stride)
            for fed, targets in wins:
                sum_ll += score_window(model, fed, targets, keep_rows)
                n_scored += len(targets)
                all_targets += targets

    out = {"protocol": args.protocol, "n_docs": len(docs), "n_tokens": sum(len(d) for d in docs),
           "n_scored": n_scored, "sum_loglik": sum_ll, "nll_per_token": -sum_ll / n_scored,
           "token_perplexity": math.exp(-sum_ll / n_scored)}
    if args.protocol == "lm-eval-wikitext":
        words = sum(count_words(p) for p in pages)
        nbytes = sum(len(p.encode("utf-8")) for p in pages)
        out.update(n_words=words, n_bytes=nbytes, word_perplexity=math.exp(-sum_ll / words),
                   byte_perplexity=math.exp(-sum_ll / nbytes), bits_per_byte=-sum_ll / nbytes / math.log(2))
    if args.check_logits:
        targets, rows, file_nll = read_logprob_file(args.check_logits)
        ref = np.concatenate(keep_rows, axis=0)
        if rows.shape != ref.shape:
            sys.exit(f"FAIL: {args.check_logits} has rows {rows.shape}, the reference {ref.shape}")
        out["check_logits"] = {"max_abs_diff": float(np.abs(rows - ref).max()),
                               "file_sum_nll": file_nll,
                               "targets_match": bool(np.array_equal(targets, np.array(all_targets)))}
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
