# The xp_variant fixture: one test per framework variant (docs: Testing your own function).
pytest_plugins = ["xpsoftmax.testing.pytest_plugin"]
