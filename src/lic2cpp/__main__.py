import sys

from lic2cpp.cli import main

sys.exit(main())
