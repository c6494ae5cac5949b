"""The synthetic shapes world: seeded scenes and clips, and question families with short exact answers."""
