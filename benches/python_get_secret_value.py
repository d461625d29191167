"""Time of mage_secrets.get_secret_value after the first call (the README's figure).

    python benches/python_get_secret_value.py [path/to/mage-secrets]

Makes a SQLite environment with the CLI in a temporary folder, then times
calls from Python with timeit (median of 15 repeats of 20,000 calls each).
Build the wheel with `maturin build --release` first and install it.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import timeit

import mage_secrets

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/mage-secrets"
with tempfile.TemporaryDirectory() as tmp:
    data_dir = os.path.join(tmp, "data")
    for name, value in [("secret1", "sooper dooper secret string"), ("token", "t" * 64)]:
        subprocess.run([binary, "--data-dir", data_dir, "set", name], input=value.encode(), check=True)
    subprocess.run([binary, "--data-dir", data_dir, "set", "token", "--pipeline", "etl"], input=b"p", check=True)
    os.environ["MAGE_DATA_DIR"] = data_dir
    os.environ.pop("MAGE_SECRETS_DATABASE", None)
    get = mage_secrets.get_secret_value
    assert get("secret1") == "sooper dooper secret string"
    number = 20_000
    for label, stmt in [
        ("get_secret_value('secret1')", lambda: get("secret1")),
        ("get_secret_value('token', pipeline_uuid='etl')", lambda: get("token", pipeline_uuid="etl")),
        ("missing, suppress_warning=True", lambda: get("nope", suppress_warning=True)),
    ]:
        runs = timeit.repeat(stmt, number=number, repeat=15)
        per_call = [r / number * 1e6 for r in runs]
        print(f"{label}: median {statistics.median(per_call):.2f} µs, min {min(per_call):.2f} µs per call")
