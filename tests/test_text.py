from assistant.text import clean_for_matching, detect_language, fold, search_terms, split_sentences


def test_fold_strips_diacritics_tatweel_and_unifies_letters_and_digits():
    assert fold("الأُسْـــرَة ٢٠١٥ ۱۲") == "الاسره 2015 12"
    assert fold("إلى آخر ٱلمدى") == "الي اخر المدي"
    # Presentation forms (legacy encodings, PDFs) fold through NFKC.
    assert fold("ﻻ") == "لا"


def test_clean_for_matching_keeps_letters():
    assert clean_for_matching("مدرسة") == "مدرسة"  # ة kept for the stemmer


def test_search_terms_stem_before_folding_and_drop_stopwords():
    terms = search_terms("السيارات غير المرخصة في بنغازي")
    assert "في" not in terms
    assert terms[0] == "سيار" and "مرخص" in terms
    # Diacritics, tatweel and alef forms do not change the terms.
    assert search_terms("السَّيّارات غيـــر المُرخَّصة في بنغازي") == terms
    assert search_terms("vehicles ordered") == ["vehicl", "order"]


def test_detect_language_counts_words():
    assert detect_language("ما سعر iPhone في السعودية؟") == "ar"
    assert detect_language("What did the chief of staff order?") == "en"
    assert detect_language("What did الناظوري order about vehicles?") == "en"


def test_split_sentences_arabic_and_english_marks():
    text = "قال الوزير: القرار نهائي. هل صُرف 1.5 مليون؟ نعم!\nسطر آخر"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["قال الوزير: القرار نهائي.", "هل صُرف 1.5 مليون؟", "نعم!", "سطر آخر"]
