"""Model mechanics every family shares: configs, key conversion, file checks and detection,
loading/saving and the specification base. The families themselves: ``backend/families``.

Import from the submodules (this package file stays empty so that importing one piece, such as
the key maps, does not pull in every model class)::

    from backend.models.detect import detect_model, check_model_flags
    from backend.families.loaded import get_spec

    info = detect_model(path)                       # reads keys/configs only
    check_model_flags(info, command="train_network", v2=args.v2, v_parameterization=args.v_parameterization)
    spec = get_spec(info.family)
    components = spec.load(path, v_prediction=args.v_parameterization, tokenizer_cache_dir=...)
"""
