"""The Colab path: ``pip install git+<repository URL>`` builds the package from the committed
tree; the committed reference results must travel with it and be found outside a checkout."""
import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    try:
        committed = sorted(Path(p).name for p in
                           _git("ls-files", "results/*.json", "results/*.models.pt").split())
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs a git checkout")
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    src.mkdir()
    # what pip's git+URL install sees: the committed tree, nothing else
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp / "dist"), str(src)], check=True)
    whl = next((tmp / "dist").glob("attn_lesson-*.whl"))
    return whl, committed, tmp


def test_the_wheel_carries_every_committed_results_file(wheel):
    whl, committed, _ = wheel
    names = zipfile.ZipFile(whl).namelist()
    shipped = sorted(Path(n).name for n in names if "/share/attn_lesson/results/" in n)
    assert committed and shipped == committed
    assert any(n.startswith("attn_lesson/") and n.endswith("results.py") for n in names)


def test_an_installed_package_finds_the_results_outside_the_repository(wheel):
    whl, committed, tmp = wheel
    env_dir = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    py = env_dir / "bin" / "python"
    # install the wheel as pip lays it out (package -> site-packages, data -> the prefix), by
    # hand: running this environment's pip would uninstall the package under test from it
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if ".data/data/" in name:
                dest = env_dir / name.split(".data/data/", 1)[1]
            elif name.startswith("attn_lesson/"):
                dest = Path(site) / name
            else:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(z.read(name))
    code = ("import json, sys, attn_lesson as al\n"
            "out = {}\n"
            "for stem in json.loads(sys.argv[1]):\n"
            "    ref = al.results.load(stem)\n"
            "    out[stem] = [str(ref.path), len(ref.arms)]\n"
            "    for arm in ref.config.get('keep_models', []):\n"
            "        assert ref.models(arm), arm    # kept weights travel too, sha256 checked\n"
            "claims = len(al.ledger.load_claims())    # the ledger's claims file travels too\n"
            "print(json.dumps({'file': al.__file__, 'prefix': sys.prefix, 'loaded': out, 'claims': claims}))\n")
    stems = [Path(c).stem for c in committed if c.endswith(".json") and c != "claims.json"]
    deps = sysconfig.get_paths()["purelib"]            # torch, numpy, ... of this environment
    res = subprocess.run([str(py), "-c", code, json.dumps(stems)], cwd=tmp, capture_output=True,
                         text=True, env={"PYTHONPATH": deps, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["file"].startswith(str(env_dir)) and not info["file"].startswith(str(ROOT))
    share = str(Path(info["prefix"]) / "share" / "attn_lesson" / "results")
    assert sorted(info["loaded"]) == sorted(stems)
    assert info["claims"] == len(json.loads((ROOT / "results" / "claims.json").read_text()))
    for stem, (path, n_arms) in info["loaded"].items():
        assert path.startswith(share) and n_arms >= 1, (stem, path)
