"""Input data: the contract's tables, loading, validation and the History object."""
