"""`python -m sensor_sim ...` is the same command line as `sensor-sim ...`."""

from sensor_sim.cli import app

if __name__ == "__main__":  # worker processes (spawn) import this module again
    app(prog_name="sensor-sim")
