def test_import():
    import picoformer
    assert picoformer.Error.__module__ == "picoformer"
