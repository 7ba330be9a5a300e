"""Makes `import tsrnn` work for the tests in both setups.

Installed (pip install --no-build-isolation .): the package carries its own _tsrnn_ops*.so; nothing to do here.
Dev tree (package not installed): put torch_ext/ on sys.path and, unless TSRNN_OPS_LIBRARY is already set, point it
at the newest _tsrnn_ops*.so under the repository's build*/ folders (e.g. build-shim/ from
`cmake -S . -B build-shim -DTSRNN_BUILD_TESTS=OFF && cmake --build build-shim -j2`).
"""

import glob
import importlib.util
import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

if importlib.util.find_spec("tsrnn") is None:
    sys.path.insert(0, os.path.join(_REPO, "torch_ext"))
    if not os.environ.get("TSRNN_OPS_LIBRARY"):
        built = glob.glob(os.path.join(_REPO, "build*", "**", "_tsrnn_ops*.so"), recursive=True)
        if built:
            os.environ["TSRNN_OPS_LIBRARY"] = max(built, key=os.path.getmtime)
