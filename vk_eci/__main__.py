import sys

from vk_eci.cli import main

sys.exit(main())
