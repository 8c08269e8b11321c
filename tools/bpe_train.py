#!/usr/bin/python3
"""Byte-level BPE (GPT-2 style): training, HF tokenizer.json export, encode/decode.

The encoder mirrors what Hugging Face `tokenizers` computes for a tokenizer.json
with the layout of gpt-neox-20b's (NFC normalizer, ByteLevel pre-tokenizer with
the GPT-2 split regex, BPE by merge rank, ByteLevel decoder), so fixtures made
with it can be checked by the C++ tokenizer.

Python's `regex` module is not installed on the team machine, so the GPT-2 split
  's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
is implemented by hand with unicodedata character classes.

Usable as a module (train_bpe, Tokenizer) or as a script:
  /usr/bin/python3 tools/bpe_train.py --data ../shared/data/tinyshakespeare.txt \
      --vocab-size 2048 --out /tmp/tokenizer.json
"""
import argparse
import json
import unicodedata
from collections import Counter, defaultdict

EOT = "<|endoftext|>"

# Unicode White_Space (what \s means for Oniguruma in Unicode mode). Python's
# str.isspace() also accepts U+001C..U+001F, which \s does not.
_WHITESPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _is_space(ch):
    return ch in _WHITESPACE


def _is_letter(ch):
    return unicodedata.category(ch)[0] == "L"


def _is_number(ch):
    return unicodedata.category(ch)[0] == "N"


def _is_other(ch):
    return not (_is_space(ch) or _is_letter(ch) or _is_number(ch))


_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def gpt2_split(text):
    """Splits text exactly as the GPT-2 pre-tokenizer regex does (leftmost, first alternative)."""
    out = []
    n = len(text)
    i = 0
    while i < n:
        ch = text[i]
        # 's|'t|'re|'ve|'m|'ll|'d  (case-sensitive, like the original regex)
        if ch == "'":
            hit = None
            for c in _CONTRACTIONS:
                if text.startswith(c, i + 1):
                    hit = c
                    break
            if hit is not None:
                out.append(text[i:i + 1 + len(hit)])
                i += 1 + len(hit)
                continue
        # ' ?' prefix then a run of one class
        start = i
        j = i + 1 if (ch == " " and i + 1 < n) else i
        cls = None
        if j < n:
            c2 = text[j]
            if _is_letter(c2):
                cls = _is_letter
            elif _is_number(c2):
                cls = _is_number
            elif _is_other(c2):
                cls = _is_other
        if cls is not None:
            k = j + 1
            while k < n and cls(text[k]):
                k += 1
            out.append(text[start:k])
            i = k
            continue
        # Whitespace: \s+(?!\S) backtracks one char when a non-space follows,
        # unless that leaves nothing, in which case \s+ takes the single char.
        k = i + 1
        while k < n and _is_space(text[k]):
            k += 1
        if k < n and k - i >= 2:
            k -= 1
        out.append(text[i:k])
        i = k
    return out


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode char map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    k = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + k)
            k += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENC = bytes_to_unicode()
BYTE_DEC = {c: b for b, c in BYTE_ENC.items()}


def _byte_level(piece):
    return "".join(BYTE_ENC[b] for b in piece.encode("utf-8"))


def train_bpe(text, vocab_size, log=print):
    """Learns merges by pair frequency over the pre-tokenized words of text.

    Ids: 0 = <|endoftext|>, 1..256 = the 256 byte symbols in byte order, then one
    id per merge in the order learned. Ties in pair frequency go to the pair with
    the smaller ids, so training is deterministic.
    Returns (vocab: dict token->id, merges: list of (a, b)).
    """
    n_merges = vocab_size - 1 - 256
    assert n_merges >= 0
    text = unicodedata.normalize("NFC", text)
    id_to_tok = [EOT] + [BYTE_ENC[b] for b in range(256)]
    tok_to_id = {t: i for i, t in enumerate(id_to_tok)}

    word_freq = Counter(_byte_level(p) for p in gpt2_split(text))
    words = [[tok_to_id[c] for c in w] for w in word_freq]
    freqs = list(word_freq.values())

    pair_count = defaultdict(int)
    pair_words = defaultdict(set)
    for wi, (w, f) in enumerate(zip(words, freqs)):
        for a, b in zip(w, w[1:]):
            pair_count[(a, b)] += f
            pair_words[(a, b)].add(wi)

    merges = []
    for m in range(n_merges):
        if not pair_count:
            break
        best, cnt = max(pair_count.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
        if cnt < 2:
            break
        a, b = best
        new_id = len(id_to_tok)
        id_to_tok.append(id_to_tok[a] + id_to_tok[b])
        tok_to_id[id_to_tok[new_id]] = new_id
        merges.append((id_to_tok[a], id_to_tok[b]))
        for wi in list(pair_words[best]):
            w, f = words[wi], freqs[wi]
            for p in zip(w, w[1:]):
                pair_count[p] -= f
                if pair_count[p] <= 0:
                    del pair_count[p]
            nw = []
            k = 0
            while k < len(w):
                if k + 1 < len(w) and w[k] == a and w[k + 1] == b:
                    nw.append(new_id)
                    k += 2
                else:
                    nw.append(w[k])
                    k += 1
            words[wi] = nw
            for p in zip(nw, nw[1:]):
                pair_count[p] += f
                pair_words[p].add(wi)
        del pair_words[best]
        if log and (m + 1) % 500 == 0:
            log(f"bpe: {m + 1} merges, last {merges[-1]!r} count {cnt}")
    return tok_to_id, merges


def tokenizer_json(vocab, merges):
    """HF tokenizer.json with the same layout as gpt-neox-20b's."""
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{
            "id": vocab[EOT], "special": True, "content": EOT, "single_word": False,
            "lstrip": False, "rstrip": False, "normalized": False,
        }],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": dict(byte_level),
        "post_processor": dict(byte_level),
        "decoder": dict(byte_level),
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "vocab": dict(sorted(vocab.items(), key=lambda kv: kv[1])),
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


class Tokenizer:
    """Encoder/decoder for a byte-level BPE tokenizer.json (special tokens: non-normalized added tokens)."""

    def __init__(self, vocab, merges, specials=(EOT,)):
        self.vocab = dict(vocab)
        self.inv = {i: t for t, i in self.vocab.items()}
        self.ranks = {tuple(m): r for r, m in enumerate(merges)}
        # Longest first so that overlapping specials match leftmost-longest.
        self.specials = sorted(specials, key=len, reverse=True)
        self.cache = {}

    @classmethod
    def from_file(cls, path):
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        m = j["model"]
        merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
        specials = [t["content"] for t in j["added_tokens"]]
        for t in j["added_tokens"]:
            assert not t["normalized"] and not t["lstrip"] and not t["rstrip"] \
                and not t["single_word"], "only plain added tokens supported"
        return cls(m["vocab"], merges, specials)

    def _bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for p in zip(parts, parts[1:]):
                r = self.ranks.get(p)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = p, r
            if best is None:
                break
            merged = []
            k = 0
            while k < len(parts):
                if k + 1 < len(parts) and parts[k] == best[0] and parts[k + 1] == best[1]:
                    merged.append(parts[k] + parts[k + 1])
                    k += 2
                else:
                    merged.append(parts[k])
                    k += 1
            parts = merged
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def _encode_plain(self, text):
        ids = []
        for piece in gpt2_split(unicodedata.normalize("NFC", text)):
            ids.extend(self._bpe(_byte_level(piece)))
        return ids

    def encode(self, text):
        ids = []
        i = 0
        while True:
            # Leftmost special occurrence; longest wins at equal position.
            hit, pos = None, len(text)
            for s in self.specials:
                p = text.find(s, i)
                if p != -1 and p < pos:
                    hit, pos = s, p
            ids.extend(self._encode_plain(text[i:pos]))
            if hit is None:
                return ids
            ids.append(self.vocab[hit])
            i = pos + len(hit)

    def decode(self, ids):
        toks = [self.inv[i] for i in ids]
        out = bytearray()
        for t in toks:
            if t in self.specials:
                out += t.encode("utf-8")
            else:
                out += bytes(BYTE_DEC[c] for c in t)
        return out.decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--vocab-size", type=int, default=2048)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    vocab, merges = train_bpe(text, args.vocab_size)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False, indent=2)
    tok = Tokenizer.from_file(args.out)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    print(f"vocab {len(vocab)}, merges {len(merges)}, {len(ids)} tokens, {len(text) / len(ids):.2f} chars/token")


if __name__ == "__main__":
    main()
