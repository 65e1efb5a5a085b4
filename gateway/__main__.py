"""``python -m gateway``: the same command line as ``edge-gateway``."""

from gateway.cli import app

if __name__ == "__main__":
    app(prog_name="edge-gateway")
