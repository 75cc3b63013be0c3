import sys

from handwritten.cli import main

sys.exit(main())
