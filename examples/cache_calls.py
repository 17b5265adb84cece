"""The seed's caching example, run outside any app: `python examples/cache_calls.py`.

With cache_calls=True (the default) the four repeated calls do nothing; each new argument runs.
"""

from lightning_kernel import LightningWork


class ExampleWork(LightningWork):
    def run(self, *args, **kwargs):
        print(f"I received the following props: args: {args} kwargs: {kwargs}")


work = ExampleWork()
work.run(value=1)

# Providing the same value. This won't run as already cached.
work.run(value=1)
work.run(value=1)
work.run(value=1)
work.run(value=1)

# Changing the provided value. This isn't cached and will run again.
work.run(value=10)
