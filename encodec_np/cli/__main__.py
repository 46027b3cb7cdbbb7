"""``python -m encodec_np.cli``: the command line (as the ``encodec-np`` script)."""
import sys

from encodec_np.cli import main

sys.exit(main())
