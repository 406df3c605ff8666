"""Per-chapter glue: each module holds its chapter's profile dataclass (``smoke``, ``book``,
``paper`` sizes) and the dataset and evaluation steps its notebook runs."""
