"""StyleCam: `python run_cam.py --help`. Parse, build the config, run (all in realtime.cli)."""
import sys

from nets.launch import stylecam_cam

if __name__ == "__main__":
    sys.exit(stylecam_cam())
