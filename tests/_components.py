"""What the config tests share: a registered mmrazor/kdlab component's constructor defaults."""
import inspect


def constructor_defaults(type_name) -> dict:
    """The keyword defaults of the component registered as ``type_name`` (``{}`` if none is), without
    ``init_cfg`` and the channel counts that mmrazor's ``AutoChannelDistiller`` reads off the models."""
    import kdlab.models  # noqa: F401  (registers kdlab's components)
    from mmrazor.registry import MODELS
    cls = MODELS.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        return {}
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
            and k not in ('init_cfg', 'student_channels', 'teacher_channels')}
