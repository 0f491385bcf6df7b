"""The tfsoap walkthrough in Python (the Java and C# programs in clients/ do the same).

Lists the models, reads the digits model's metadata, calls Predict once with typed float_val
values and once with tensor_content, prints the predicted classes, and shows the typed fault
for an unknown model.

    python clients/python/examples/walkthrough.py [http://127.0.0.1:8080/]
"""

from __future__ import annotations

import sys

import numpy as np

from tfsoap_client import ModelNotFoundError, PredictClient

# Ten 8x8 digits, 0..9, pixel values 0..16 as scikit-learn's digits dataset has them.
DIGITS = """
0 0 5 13 9 1 0 0 0 0 13 15 10 15 5 0 0 3 15 2 0 11 8 0 0 4 12 0 0 8 8 0 0 5 8 0 0 9 8 0 0 4 11 0 1 12 7 0 0 2 14 5 10 12 0 0 0 0 6 13 10 0 0 0
0 0 0 12 13 5 0 0 0 0 0 11 16 9 0 0 0 0 3 15 16 6 0 0 0 7 15 16 16 2 0 0 0 0 1 16 16 3 0 0 0 0 1 16 16 6 0 0 0 0 1 16 16 6 0 0 0 0 0 11 16 10 0 0
0 0 0 4 15 12 0 0 0 0 3 16 15 14 0 0 0 0 8 13 8 16 0 0 0 0 1 6 15 11 0 0 0 1 8 13 15 1 0 0 0 9 16 16 5 0 0 0 0 3 13 16 16 11 5 0 0 0 0 3 11 16 9 0
0 0 7 15 13 1 0 0 0 8 13 6 15 4 0 0 0 2 1 13 13 0 0 0 0 0 2 15 11 1 0 0 0 0 0 1 12 12 1 0 0 0 0 0 1 10 8 0 0 0 8 4 5 14 9 0 0 0 7 13 13 9 0 0
0 0 0 1 11 0 0 0 0 0 0 7 8 0 0 0 0 0 1 13 6 2 2 0 0 0 7 15 0 9 8 0 0 5 16 10 0 16 6 0 0 4 15 16 13 16 1 0 0 0 0 3 15 10 0 0 0 0 0 2 16 4 0 0
0 0 12 10 0 0 0 0 0 0 14 16 16 14 0 0 0 0 13 16 15 10 1 0 0 0 11 16 16 7 0 0 0 0 0 4 7 16 7 0 0 0 0 0 4 16 9 0 0 0 5 4 12 16 4 0 0 0 9 16 16 10 0 0
0 0 0 12 13 0 0 0 0 0 5 16 8 0 0 0 0 0 13 16 3 0 0 0 0 0 14 13 0 0 0 0 0 0 15 12 7 2 0 0 0 0 13 16 13 16 3 0 0 0 7 16 11 15 8 0 0 0 1 9 15 11 3 0
0 0 7 8 13 16 15 1 0 0 7 7 4 11 12 0 0 0 0 0 8 13 1 0 0 4 8 8 15 15 6 0 0 2 11 15 15 4 0 0 0 0 0 16 5 0 0 0 0 0 9 15 1 0 0 0 0 0 13 5 0 0 0 0
0 0 9 14 8 1 0 0 0 0 12 14 14 12 0 0 0 0 9 10 0 15 4 0 0 0 3 16 12 14 2 0 0 0 4 16 16 2 0 0 0 3 16 8 10 13 2 0 0 1 15 1 3 16 8 0 0 0 11 16 15 11 1 0
0 0 11 12 0 0 0 0 0 2 16 16 16 13 0 0 0 3 16 12 10 14 0 0 0 1 16 1 12 15 0 0 0 0 13 16 9 15 2 0 0 0 0 3 0 9 11 0 0 0 0 0 9 15 4 0 0 0 9 12 13 3 0 0
"""


def main(url: str) -> int:
    client = PredictClient(url)
    for m in client.list_models():
        print(f"model {m.name}: versions {list(m.versions)}, latest {m.latest_version}")
    meta = client.metadata("digits")
    print(f"digits v{meta.version} inputs: {[(t.name, t.dtype, t.shape) for t in meta.inputs]}")
    print(f"digits v{meta.version} outputs: {[(t.name, t.dtype, t.shape) for t in meta.outputs]}")
    images = np.array([[float(v) for v in row.split()] for row in DIGITS.strip().splitlines()],
                      dtype=np.float32) / 16.0
    typed = client.predict("digits", {"images": images}, encoding="typed")
    print(f"predicted classes (typed):          {typed['classes'].tolist()}")
    packed = client.predict("digits", {"images": images}, encoding="tensor_content")
    print(f"predicted classes (tensor_content): {packed['classes'].tolist()}")
    try:
        client.predict("no_such_model", {"images": images})
    except ModelNotFoundError as exc:
        print(f"fault for an unknown model: {exc.code} ({exc.message})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080/"))
