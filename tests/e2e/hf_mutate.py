"""Breaks a zipped Hugging Face folder the ways a learner's upload can be broken (for
tests/e2e/export.test.mjs). Standard library only.

    python3 tests/e2e/hf_mutate.py IN.zip OUT.zip MUTATION

MUTATION: truncated | wrong-shape | missing-tensor | non-finite | other-vocabulary | foreign-config |
truncated-weights | not-a-zip
"""

import json
import math
import struct
import sys
import zipfile


def read_safetensors(data):
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        tensors[name] = (info["dtype"], info["shape"], body[start:end])
    return header.get("__metadata__"), tensors


def write_safetensors(metadata, tensors):
    header, body = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def main():
    source, target, mutation = sys.argv[1:4]
    raw = open(source, "rb").read()
    if mutation == "truncated":
        open(target, "wb").write(raw[: len(raw) * 6 // 10])
        return
    if mutation == "not-a-zip":
        open(target, "wb").write(bytes((i * 2654435761 >> 24) & 255 for i in range(2048)))
        return
    with zipfile.ZipFile(source) as z:
        files = {info.filename: z.read(info) for info in z.infolist()}
    name = lambda base: next(k for k in files if k.endswith("/" + base) or k == base)
    weights = name("model.safetensors")
    if mutation in ("wrong-shape", "missing-tensor", "non-finite"):
        metadata, tensors = read_safetensors(files[weights])
        if mutation == "wrong-shape":
            dtype, shape, data = tensors["transformer.wpe.weight"]
            tensors["transformer.wpe.weight"] = (dtype, [shape[0] // 2, shape[1]], data[: len(data) // 2])
        elif mutation == "missing-tensor":
            del tensors["transformer.ln_f.bias"]
        else:
            dtype, shape, data = tensors["transformer.h.0.mlp.c_fc.weight"]
            tensors["transformer.h.0.mlp.c_fc.weight"] = (dtype, shape, struct.pack("<f", math.inf) + data[4:])
        files[weights] = write_safetensors(metadata, tensors)
    elif mutation == "truncated-weights":
        files[weights] = files[weights][: len(files[weights]) // 2]
    elif mutation == "other-vocabulary":
        tok = json.loads(files[name("tokenizer.json")])
        vocab = tok["model"]["vocab"]
        vocab["great"], vocab["terrible"] = vocab["terrible"], vocab["great"]
        files[name("tokenizer.json")] = json.dumps(tok).encode()
    elif mutation == "foreign-config":
        config = json.loads(files[name("config.json")])
        config["model_type"] = "llama"
        files[name("config.json")] = json.dumps(config).encode()
    else:
        raise SystemExit(f"unknown mutation {mutation}")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for filename, data in files.items():
            z.writestr(filename, data)


if __name__ == "__main__":
    main()
