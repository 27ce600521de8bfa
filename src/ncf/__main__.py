import sys

from ncf.cli import main

sys.exit(main())
