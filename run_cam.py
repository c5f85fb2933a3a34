"""StyleCam: `python run_cam.py --help`. Parse, build the config, run (all in realtime.cli)."""
import sys

from realtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
