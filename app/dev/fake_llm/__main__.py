"""``python -m app.dev.fake_llm --scenario FILE --port P [--host H] [--api-key K]``."""

from app.dev.fake_llm.server import main

if __name__ == "__main__":
    main()
