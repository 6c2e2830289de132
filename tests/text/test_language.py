import pytest

from server.text import (
    ACCEPTED_LANGUAGES,
    SUPPORTED_LANGUAGES,
    UnsupportedLanguageError,
    detect_language,
    normalize_language,
)


def test_supported_languages() -> None:
    assert SUPPORTED_LANGUAGES == (
        "Chinese",
        "English",
        "Japanese",
        "Korean",
        "German",
        "French",
        "Russian",
        "Portuguese",
        "Spanish",
        "Italian",
    )
    assert ACCEPTED_LANGUAGES[0] == "Auto"
    assert ACCEPTED_LANGUAGES[1:] == SUPPORTED_LANGUAGES


@pytest.mark.parametrize("name", SUPPORTED_LANGUAGES)
def test_canonical_names_in_any_case(name: str) -> None:
    assert normalize_language(name) == name
    assert normalize_language(name.lower()) == name
    assert normalize_language(name.upper()) == name
    assert normalize_language(f"  {name}  ") == name


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("en", "English"),
        ("zh", "Chinese"),
        ("ja", "Japanese"),
        ("ko", "Korean"),
        ("de", "German"),
        ("fr", "French"),
        ("ru", "Russian"),
        ("pt", "Portuguese"),
        ("es", "Spanish"),
        ("it", "Italian"),
    ],
)
def test_iso_codes(code: str, name: str) -> None:
    assert normalize_language(code) == name
    assert normalize_language(code.upper()) == name


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("zh-cn", "Chinese"),
        ("zh-CN", "Chinese"),
        ("zh_TW", "Chinese"),
        ("zh-Hans-CN", "Chinese"),
        ("en-US", "English"),
        ("en_GB", "English"),
        ("pt-BR", "Portuguese"),
        ("es-419", "Spanish"),
        ("eng", "English"),
        ("deu", "German"),
        ("ger", "German"),
        ("Deutsch", "German"),
        ("français", "French"),
        ("español", "Spanish"),
        ("日本語", "Japanese"),
        ("中文", "Chinese"),
        ("한국어", "Korean"),
        ("русский", "Russian"),
    ],
)
def test_common_variants(value: str, name: str) -> None:
    assert normalize_language(value) == name


@pytest.mark.parametrize("value", [None, "", "   ", "auto", "AUTO", "Auto"])
def test_auto(value: str | None) -> None:
    assert normalize_language(value) == "Auto"


@pytest.mark.parametrize("value", ["Klingon", "nl", "en-", "xx-US", "english!", "english-us"])
def test_unknown_language_raises_with_the_supported_list(value: str) -> None:
    with pytest.raises(UnsupportedLanguageError) as excinfo:
        normalize_language(value)
    message = str(excinfo.value)
    assert repr(value) in message
    for name in ACCEPTED_LANGUAGES:
        assert name in message
    assert excinfo.value.value == value


def test_unsupported_language_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        normalize_language("Klingon")


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("안녕하세요, 만나서 반갑습니다.", "Korean"),
        ("こんにちは、元気ですか？", "Japanese"),
        ("カタカナだけ", "Japanese"),
        ("東京は日本の首都です。", "Japanese"),
        ("你好，今天天气很好。", "Chinese"),
        ("我用iPhone拍照。", "Chinese"),
        ("Привет, как дела?", "Russian"),
        ("Я купил новый iPhone вчера", "Russian"),
    ],
)
def test_detect_by_script(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    "text",
    [
        "Hello, how are you?",
        "Guten Tag, wie geht es Ihnen?",
        "¿Dónde está la biblioteca?",
        "",
        "12345 !?",
        "مرحبا بالعالم",
        "Hello world and 你",  # mostly Latin: mixed
        "Hello world Привет",  # no script has a majority: mixed
    ],
)
def test_latin_mixed_and_other_scripts_are_auto(text: str) -> None:
    assert detect_language(text) == "Auto"


def test_detected_language_is_accepted_by_normalize() -> None:
    for text in ["안녕", "こんにちは", "你好", "Привет", "Hello"]:
        detected = detect_language(text)
        assert normalize_language(detected) == detected
