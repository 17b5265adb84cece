"""PL's module path `demos`: small models and data for examples and tests."""
