from harness.cli import main

# Guarded: isolated children (forkserver) re-import the parent's __main__ as __mp_main__.
if __name__ == "__main__":
    raise SystemExit(main())
