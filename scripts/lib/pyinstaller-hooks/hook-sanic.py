"""PyInstaller hook for scripts/build-binary: Sanic reads its own source at start-up.

Sanic's "touchup" rewrites a few of its methods from their source (``inspect.getsource``), so
its modules are collected as source files too, not only as bytecode in the archive.
"""

from PyInstaller.utils.hooks import collect_data_files, collect_submodules

module_collection_mode = "pyz+py"
hiddenimports = collect_submodules("sanic")
datas = collect_data_files("sanic")
