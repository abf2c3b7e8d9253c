"""Every text a user sees, in English and Russian, and how a user's language is chosen."""

from __future__ import annotations

from bot.settings import LANGUAGES

#: Bot commands in menu order: name -> (English, Russian) one-line descriptions for setMyCommands.
COMMANDS: dict[str, tuple[str, str]] = {
    "compose": ("Compose a melody: /compose or /compose celtic",
                "Сочинить мелодию: /compose или /compose celtic"),
    "style": ("Default style: /style folk", "Стиль по умолчанию: /style folk"),
    "temperature": ("Boldness 0.1-2.0: /temperature 0.8", "Смелость 0.1-2.0: /temperature 0.8"),
    "bars": ("Length in bars 4-64: /bars 16", "Длина в тактах 4-64: /bars 16"),
    "tempo": ("Tempo 40-240 BPM: /tempo 100", "Темп 40-240 уд/мин: /tempo 100"),
    "instrument": ("Instrument: /instrument violin", "Инструмент: /instrument violin"),
    "language": ("Language: /language ru or en", "Язык: /language ru или en"),
    "accompaniment": ("Chords and bass under the melody: /accompaniment on or off",
                      "Аккорды и бас под мелодией: /accompaniment on или off"),
    "key": ("Key: /key D minor or /key auto", "Тональность: /key D minor или /key auto"),
    "metre": ("Metre: /metre 6/8 or /metre auto", "Размер: /metre 6/8 или /metre auto"),
    "settings": ("Show your settings", "Показать настройки"),
    "reset": ("Restore the default settings", "Вернуть настройки по умолчанию"),
    "help": ("How to use the bot", "Как пользоваться ботом"),
    "start": ("Welcome and styles", "Приветствие и стили"),
}

#: Russian descriptions of the built-in styles; other styles show their model's own description.
STYLE_DESCRIPTIONS_RU = {
    "classical": "И. С. Бах: верхний голос хоралов и других сочинений",
    "renaissance": "Мессы Палестрины: плавные вокальные линии",
    "folk": "Немецкие народные песни из Эссенского собрания",
    "chinese": "Китайские народные песни из Эссенского собрания (хань)",
    "celtic": "Ирландские и шотландские скрипичные наигрыши (Ryan's Mammoth, O'Neill 1850)",
}

TEXTS: dict[str, dict[str, str]] = {
    "start": {
        "en": "Hello, {name}! I compose melodies with small neural networks trained on public-domain "
        "music.\n\nPick a style below, type /compose, or send me a MIDI file and I will continue it. "
        "/help lists everything I can do.",
        "ru": "Здравствуйте, {name}! Я сочиняю мелодии с помощью небольших нейросетей, обученных на "
        "музыке из общественного достояния.\n\nВыберите стиль ниже, наберите /compose или пришлите "
        "MIDI-файл, и я его продолжу. /help расскажет обо всём, что я умею.",
    },
    "help": {
        "en": "What I can do:\n\n"
        "/compose - a melody in your style. Examples: /compose, /compose celtic, /compose classical+celtic\n"
        "Send a MIDI file (as a file, up to 1 MB) - I take its last bars and continue them in your style.\n\n"
        "Settings (I remember them):\n"
        "/style celtic - default style ({styles})\n"
        "/temperature 0.8 - boldness, {t_low}-{t_high}: lower is calmer, higher is wilder\n"
        "/bars 16 - length, {b_low}-{b_high} bars\n"
        "/tempo 100 - {tempo_low}-{tempo_high} beats per minute (/tempo auto: the style's own)\n"
        "/instrument violin - a General MIDI instrument name or number 0-127 (/instrument auto)\n"
        "/language ru - language of my replies: ru or en (/language auto)\n"
        "/accompaniment off - the melody alone; on (the default) - with chords and a bass line in the style, "
        "chord symbols on the score\n"
        "/key D minor - the key (Bb major, F# minor...; modes where a style has them, e.g. celtic's "
        "G mixolydian, A dorian; /key auto: drawn from the style's music)\n"
        "/metre 6/8 - the metre, one the style knows: {metres} (/metre auto)\n"
        "/settings - show them all, /reset - back to defaults\n\n"
        "A command without a value shows the current value and what is allowed.\n"
        "Under each melody: another one, continue it, change style.\n"
        "/start - the greeting and the styles, /help - this message.",
        "ru": "Что я умею:\n\n"
        "/compose - мелодия в вашем стиле. Примеры: /compose, /compose celtic, /compose classical+celtic\n"
        "Пришлите MIDI-файл (файлом, до 1 МБ) - я возьму последние такты и продолжу их в вашем стиле.\n\n"
        "Настройки (я их запоминаю):\n"
        "/style celtic - стиль по умолчанию ({styles})\n"
        "/temperature 0.8 - смелость, {t_low}-{t_high}: ниже - спокойнее, выше - неожиданнее\n"
        "/bars 16 - длина, {b_low}-{b_high} тактов\n"
        "/tempo 100 - {tempo_low}-{tempo_high} ударов в минуту (/tempo auto - как в стиле)\n"
        "/instrument violin - инструмент General MIDI: название или номер 0-127 (/instrument auto)\n"
        "/language en - язык ответов: ru или en (/language auto)\n"
        "/accompaniment off - только мелодия; on (по умолчанию) - с аккордами и басом в стиле, "
        "аккорды над нотами\n"
        "/key D minor - тональность (Bb major, F# minor, можно D минор; лады, где они есть в стиле, например "
        "в celtic G mixolydian, A dorian; /key auto - как в музыке стиля)\n"
        "/metre 6/8 - размер, из тех, что знает стиль: {metres} (/metre auto)\n"
        "/settings - показать все, /reset - вернуть по умолчанию\n\n"
        "Команда без значения показывает текущее значение и допустимые.\n"
        "Под каждой мелодией кнопки: ещё одну, продолжить, сменить стиль.\n"
        "/start - приветствие и стили, /help - это сообщение.",
    },
    "styles_header": {"en": "Styles:", "ru": "Стили:"},
    "choose_style": {"en": "Pick a style:", "ru": "Выберите стиль:"},
    "style_chosen": {"en": "Style: {style}. Composing...", "ru": "Стиль: {style}. Сочиняю..."},
    "caption": {
        "en": "{style} · {bars} bars · {tempo} BPM · {instrument} · temperature {temperature} · seed {seed}",
        "ru": "{style} · тактов: {bars} · {tempo} уд/мин · {instrument} · температура {temperature} · "
        "зерно {seed}",
    },
    "caption_seed": {
        "en": "From your file: the last {primer_bars} of its {total_bars} bars ({notes} notes, "
        "{time_signature}, {file_tempo} BPM), continued.",
        "ru": "Из вашего файла: последние {primer_bars} из {total_bars} тактов ({notes} нот, размер "
        "{time_signature}, {file_tempo} уд/мин), продолжение.",
    },
    "caption_continued": {
        "en": "Continues melody #{parent}.",
        "ru": "Продолжение мелодии №{parent}.",
    },
    "no_audio": {
        "en": "(No audio this time: the sound renderer is not available.)",
        "ru": "(Без звука: синтезатор сейчас недоступен.)",
    },
    "no_score": {
        "en": "(No sheet music this time: the score renderer is not available.)",
        "ru": "(Без нот: рендер партитуры сейчас недоступен.)",
    },
    "btn_again": {"en": "🎲 Another one", "ru": "🎲 Ещё одну"},
    "btn_continue": {"en": "➡️ Continue", "ru": "➡️ Продолжить"},
    "btn_style": {"en": "🎨 Change style", "ru": "🎨 Сменить стиль"},
    "busy": {
        "en": "I am still composing your previous melody; it will be here in a moment.",
        "ru": "Я ещё сочиняю вашу предыдущую мелодию, она вот-вот будет готова.",
    },
    "rate_limited": {
        "en": "That is a lot of melodies! Please wait {seconds} s and try again.",
        "ru": "Это много мелодий! Подождите {seconds} с и попробуйте снова.",
    },
    "overloaded": {
        "en": "Too many people are composing right now. Please try again in a minute.",
        "ru": "Сейчас сочиняют слишком многие. Попробуйте через минуту.",
    },
    "timeout": {
        "en": "Sorry, this melody took too long. Try again, perhaps with fewer bars (/bars 8).",
        "ru": "Простите, мелодия сочинялась слишком долго. Попробуйте снова, может быть, покороче (/bars 8).",
    },
    "error": {
        "en": "Sorry, something went wrong on my side. Please try again; if it keeps happening, try /reset.",
        "ru": "Простите, у меня что-то сломалось. Попробуйте ещё раз; если повторится, попробуйте /reset.",
    },
    "resumed": {
        "en": "I was restarted while composing your melody. Composing it again now.",
        "ru": "Меня перезапустили, пока я сочинял вашу мелодию. Сочиняю её заново.",
    },
    "interrupted": {
        "en": "Sorry, I was restarted while composing your melody and could not finish it. "
        "Please ask again: /compose, or send the file again.",
        "ru": "Простите, меня перезапустили, пока я сочинял вашу мелодию, и я не успел её закончить. "
        "Попросите ещё раз: /compose, или пришлите файл снова.",
    },
    "not_allowed": {
        "en": "Sorry, this bot is private.",
        "ru": "Простите, это частный бот.",
    },
    "gone": {
        "en": "I no longer have that melody. Try /compose for a new one.",
        "ru": "Этой мелодии у меня больше нет. Наберите /compose, чтобы сочинить новую.",
    },
    "unknown_command": {
        "en": "I do not know that command. /help lists what I can do.",
        "ru": "Я не знаю такой команды. /help покажет, что я умею.",
    },
    "text_hint": {
        "en": "Type /compose for a melody, or send a MIDI file to continue. /help explains more.",
        "ru": "Наберите /compose, чтобы получить мелодию, или пришлите MIDI-файл для продолжения. "
        "Подробнее: /help.",
    },
    "unknown_style": {
        "en": "I do not know the style \"{value}\". Styles: {styles}. Mix them with +, "
        "e.g. classical+celtic.",
        "ru": "Я не знаю стиля \"{value}\". Стили: {styles}. Их можно смешивать через +, "
        "например classical+celtic.",
    },
    "bad_temperature": {
        "en": "The temperature must be a number from {low} to {high}, e.g. /temperature 0.8 "
        "(got \"{value}\").",
        "ru": "Температура - число от {low} до {high}, например /temperature 0.8 (получено \"{value}\").",
    },
    "bad_bars": {
        "en": "The length must be a whole number of bars from {low} to {high}, e.g. /bars 16 "
        "(got \"{value}\").",
        "ru": "Длина - целое число тактов от {low} до {high}, например /bars 16 (получено \"{value}\").",
    },
    "bad_tempo": {
        "en": "The tempo must be a whole number of beats per minute from {low} to {high}, e.g. /tempo 100, "
        "or auto (got \"{value}\").",
        "ru": "Темп - целое число ударов в минуту от {low} до {high}, например /tempo 100, или auto "
        "(получено \"{value}\").",
    },
    "bad_instrument": {
        "en": "I do not know the instrument \"{value}\". Use a General MIDI name such as violin, flute, "
        "acoustic grand piano, or a number 0-127, or auto.",
        "ru": "Я не знаю инструмента \"{value}\". Укажите название General MIDI, например violin, flute, "
        "acoustic grand piano, или номер 0-127, или auto.",
    },
    "bad_language": {
        "en": "I speak ru and en: /language ru, /language en, or /language auto (got \"{value}\").",
        "ru": "Я говорю на ru и en: /language ru, /language en или /language auto (получено \"{value}\").",
    },
    "show_style": {
        "en": "Your style: {value}. Styles: {styles}. Change it: /style celtic (mixes such as "
        "classical+celtic work too).",
        "ru": "Ваш стиль: {value}. Стили: {styles}. Изменить: /style celtic (можно и смесь, "
        "например classical+celtic).",
    },
    "show_temperature": {
        "en": "Temperature: {value} (from {low} to {high}; lower is calmer, higher is wilder). "
        "Change it: /temperature 0.8",
        "ru": "Температура: {value} (от {low} до {high}; ниже - спокойнее, выше - неожиданнее). "
        "Изменить: /temperature 0.8",
    },
    "show_bars": {
        "en": "Length: {value} bars (from {low} to {high}). Change it: /bars 16",
        "ru": "Длина: {value} тактов (от {low} до {high}). Изменить: /bars 16",
    },
    "show_tempo": {
        "en": "Tempo: {value} (from {low} to {high} BPM, or auto). Change it: /tempo 100",
        "ru": "Темп: {value} (от {low} до {high} уд/мин или auto). Изменить: /tempo 100",
    },
    "show_instrument": {
        "en": "Instrument: {value} (a General MIDI name or number 0-127, or auto). "
        "Change it: /instrument violin",
        "ru": "Инструмент: {value} (название General MIDI или номер 0-127, или auto). "
        "Изменить: /instrument violin",
    },
    "show_language": {
        "en": "Language: {value} (ru, en, or auto to follow your Telegram app). Change it: /language ru",
        "ru": "Язык: {value} (ru, en или auto - как в вашем Telegram). Изменить: /language en",
    },
    "show_accompaniment": {
        "en": "Accompaniment: {value} (on: chords and a bass line in the style under the melody, chord "
        "symbols on the score; off: the melody alone). Change it: /accompaniment off",
        "ru": "Аккомпанемент: {value} (on - аккорды и бас в стиле под мелодией, аккорды над нотами; off - "
        "только мелодия). Изменить: /accompaniment off",
    },
    "bad_accompaniment": {
        "en": "Accompaniment is on or off, e.g. /accompaniment off, not \"{value}\".",
        "ru": "Аккомпанемент включается словом on и выключается словом off, например /accompaniment off, "
        "а не \"{value}\".",
    },
    "show_key": {
        "en": "Key: {value} (a tonic and major or minor, e.g. D minor, Bb major, F#m; in styles that have "
        "them also dorian or mixolydian, e.g. A dorian; or auto). Change it: /key D minor",
        "ru": "Тональность: {value} (тоника и лад: D minor, Bb major, F#m, D минор; в стилях, где они есть, "
        "также dorian или mixolydian, например A dorian; или auto). Изменить: /key D minor",
    },
    "bad_key": {
        "en": "I read keys like D minor, Bb major, F#m or A dorian (letters A-G), not \"{value}\".",
        "ru": "Тональность пишется так: D minor, Bb major, F#m, D минор или A dorian (буквы A-G), "
        "а не \"{value}\".",
    },
    "show_metre": {
        "en": "Metre: {value} (or auto). Each style's metres: {metres}. Change it: /metre 3/4",
        "ru": "Размер: {value} (или auto). Размеры стилей: {metres}. Изменить: /metre 3/4",
    },
    "bad_metre": {
        "en": "A metre is written like 3/4 or 6/8, not \"{value}\".",
        "ru": "Размер пишется так: 3/4 или 6/8, а не \"{value}\".",
    },
    "unknown_metre": {
        "en": "The {style} style has no pieces in {metre}: it knows {metres}. Change it with /metre, "
        "or /metre auto.",
        "ru": "В стиле {style} нет пьес в размере {metre}: он знает {metres}. Смените его командой /metre "
        "или /metre auto.",
    },
    "unknown_mode": {
        "en": "The {style} style has no pieces in the {mode} mode: it knows {modes}. Change the key with "
        "/key, or /key auto.",
        "ru": "В стиле {style} нет пьес в ладу {mode}: он знает {modes}. Смените тональность командой /key "
        "или /key auto.",
    },
    "value_on": {"en": "on", "ru": "вкл"},
    "value_off": {"en": "off", "ru": "выкл"},
    "saved": {"en": "Saved: {setting} = {value}.", "ru": "Сохранено: {setting} = {value}."},
    "settings": {
        "en": "Your settings:\nstyle: {style}\ntemperature: {temperature}\nbars: {bars}\ntempo: {tempo}\n"
        "instrument: {instrument}\nlanguage: {language}\naccompaniment: {accompaniment}\nkey: {key}\n"
        "metre: {metre}\n\n"
        "/reset restores the defaults.",
        "ru": "Ваши настройки:\nстиль: {style}\nтемпература: {temperature}\nтактов: {bars}\nтемп: {tempo}\n"
        "инструмент: {instrument}\nязык: {language}\nаккомпанемент: {accompaniment}\n"
        "тональность: {key}\nразмер: {metre}\n\n"
        "/reset вернёт значения по умолчанию.",
    },
    "reset_done": {
        "en": "Done: every setting is back to its default.",
        "ru": "Готово: все настройки возвращены по умолчанию.",
    },
    "auto_tempo": {"en": "the style's own", "ru": "как в стиле"},
    "auto_instrument": {"en": "the style's own", "ru": "как в стиле"},
    "auto_key": {"en": "the seed's, or one of the style's", "ru": "как в файле или в музыке стиля"},
    "auto_metre": {"en": "the seed's, or one of the style's", "ru": "как в файле или в музыке стиля"},
    "auto_language": {"en": "from Telegram ({value})", "ru": "как в Telegram ({value})"},
    "name_style": {"en": "style", "ru": "стиль"},
    "name_temperature": {"en": "temperature", "ru": "температура"},
    "name_bars": {"en": "bars", "ru": "такты"},
    "name_tempo": {"en": "tempo", "ru": "темп"},
    "name_instrument": {"en": "instrument", "ru": "инструмент"},
    "name_language": {"en": "language", "ru": "язык"},
    "name_accompaniment": {"en": "accompaniment", "ru": "аккомпанемент"},
    "name_key": {"en": "key", "ru": "тональность"},
    "name_metre": {"en": "metre", "ru": "размер"},
    "midi_not_midi": {
        "en": "This file is not a MIDI file. Send a .mid or .midi file and I will continue its melody.",
        "ru": "Это не MIDI-файл. Пришлите файл .mid или .midi, и я продолжу его мелодию.",
    },
    "midi_corrupt": {
        "en": "I could not read this MIDI file: it seems damaged or uses a kind of MIDI I do not support. "
        "Try exporting it again as a standard MIDI file (type 0 or 1).",
        "ru": "Не получилось прочитать этот MIDI-файл: похоже, он повреждён или в неподдерживаемом формате. "
        "Попробуйте заново сохранить его как обычный MIDI (тип 0 или 1).",
    },
    "midi_too_large": {
        "en": "This file is too big: I take files up to {limit} KB. Send a shorter MIDI file.",
        "ru": "Файл слишком большой: я принимаю файлы до {limit} КБ. Пришлите MIDI покороче.",
    },
    "midi_too_long": {
        "en": "This MIDI file is too long for me. Send a shorter piece: a few bars are enough.",
        "ru": "Этот MIDI-файл для меня слишком длинный. Пришлите отрывок покороче: хватит нескольких тактов.",
    },
    "midi_no_notes": {
        "en": "This MIDI file has no notes. Send one with a melody in it.",
        "ru": "В этом MIDI-файле нет нот. Пришлите файл с мелодией.",
    },
    "midi_drums_only": {
        "en": "This MIDI file has only drums, and I continue melodies. Send one with a melodic part.",
        "ru": "В этом MIDI-файле только ударные, а я продолжаю мелодии. "
        "Пришлите файл с мелодической партией.",
    },
    "bad_primer": {
        "en": "I could not continue this melody: its last bars have no notes, or it spans more than three "
        "octaves. Send a file whose melody goes on to its end.",
        "ru": "Не получилось продолжить эту мелодию: в её последних тактах нет нот или она шире трёх "
        "октав. Пришлите файл, где мелодия звучит до конца.",
    },
    "photo": {
        "en": "That is a picture; I work with melodies. Send a MIDI file (.mid) as a file, or type /compose.",
        "ru": "Это картинка, а я работаю с мелодиями. Пришлите MIDI-файл (.mid) файлом "
        "или наберите /compose.",
    },
    "voice": {
        "en": "I cannot listen to voice or audio messages yet. Send a MIDI file (.mid) as a file, "
        "or type /compose.",
        "ru": "Голосовые и аудиосообщения я пока не понимаю. Пришлите MIDI-файл (.mid) файлом или "
        "наберите /compose.",
    },
    "other_media": {
        "en": "I cannot use this. Send a MIDI file (.mid) as a file, or type /compose.",
        "ru": "Это мне не подходит. Пришлите MIDI-файл (.mid) файлом или наберите /compose.",
    },
    "language_name": {"en": "English", "ru": "русский"},
    "queued": {
        "en": "Many melodies are being composed right now: yours is number {place} in the queue.",
        "ru": "Сейчас сочиняется много мелодий: ваша в очереди под номером {place}.",
    },
    "worker_lost": {
        "en": "Sorry, the composer crashed while making your melody. Please try again.",
        "ru": "Простите, сочинитель сломался, пока делал вашу мелодию. Попробуйте ещё раз.",
    },
    "flood": {
        "en": "You sent a lot at once, so I skipped some of it. Please send one request at a time.",
        "ru": "Вы прислали слишком много сразу, и часть я пропустил. Присылайте по одному запросу.",
    },
    "cut_bars": {
        "en": "Shortened from {asked} to {bars} bars to keep it within {minutes}.",
        "ru": "Сокращено с {asked} до {bars} тактов, чтобы уложиться в {minutes}.",
    },
    "sped_up": {
        "en": "Played at {tempo} BPM instead of {asked} to keep it within {minutes}.",
        "ru": "Сыграно в темпе {tempo} уд/мин вместо {asked}, чтобы уложиться в {minutes}.",
    },
}


def t(lang: str, text: str, /, **fields: object) -> str:
    """The text named ``text`` in ``lang`` (English if unknown), filled in with ``fields`` (which may hold
    any name, ``key`` and ``text`` included)."""
    entry = TEXTS[text]
    return entry.get(lang, entry["en"]).format(**fields)


def pick_language(chosen: str | None, telegram_code: str | None) -> str:
    """The user's choice if any, else Russian for a Russian Telegram app, else English."""
    if chosen in LANGUAGES:
        return chosen
    return "ru" if (telegram_code or "").lower().startswith("ru") else "en"


def style_description(name: str, lang: str, fallback: str) -> str:
    return STYLE_DESCRIPTIONS_RU.get(name, fallback) if lang == "ru" else fallback
