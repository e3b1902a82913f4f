"""Built-in vocabularies for the synthetic generator.

``EN_WORDS``: a few hundred common English words (sign / poster / product vocabulary).
``ZH_WORDS``: common Chinese words made only of characters in ``charset.COMMON_ZH_CHARS`` (so the
tiny tokenizer has a token for each). Held-out sets pass their own list with ``--vocab FILE``.
"""
from __future__ import annotations

from ..charset import COMMON_ZH_CHARS

_EN = """
open close closed sale shop store market coffee tea cafe bar pub hotel motel bank post office city park
garden street road avenue lane bridge station train bus taxi airport exit entrance enter stop go slow fast
danger warning caution safety fire water food drink pizza burger bread cake milk fruit apple orange lemon
banana cherry sugar salt fresh hot cold ice cream chocolate candy sweet bakery kitchen menu today special
price free new old best good great happy love life home house room door window floor wall roof garage
parking park only no yes please thank thanks welcome hello goodbye morning night day week month year time
clock hour minute summer winter spring autumn rain snow sun moon star sky sea beach island river lake
mountain forest tree flower rose green red blue black white yellow pink purple gold silver brown grey
school college library museum theater cinema movie music radio video game play sport team club league
football soccer tennis golf baseball hockey run walk ride bike car truck boat ship plane road map north
south east west left right center top bottom up down inside outside front back first last next final
one two three four five six seven eight nine ten hundred thousand million dollar euro cash card pay buy
sell rent lease deal offer discount bonus gift box bag book paper pen ink print photo art design studio
gallery show event party festival concert dance song sing voice word letter story news daily times post
king queen prince royal castle tower gate palace church temple garden farm ranch field village town
county state nation world global planet earth space rocket energy power light lamp fire smoke steam
health doctor nurse clinic hospital pharmacy care help service support repair wash clean laundry salon
hair beauty spa fitness gym yoga body mind soul peace hope faith dream wish magic wonder secret legend
hero power super mega ultra smart quick easy simple pure natural organic local family friend friends
baby kids child adult senior men women boys girls lady gentle wild crazy cool fun funny lucky rich
young classic modern vintage retro urban royal grand little big small giant mini max plus extra premium
quality brand label product store supply tools hardware garden pets dog cat bird fish horse tiger lion
bear wolf eagle dragon phoenix ocean wave wind storm thunder shadow spirit ghost night dark bright
silent golden diamond crystal stone rock metal iron steel wood glass plastic cotton silk wool leather
chair table desk bed sofa lamp mirror clock phone computer laptop camera screen online digital smart
"""
EN_WORDS: list[str] = list(dict.fromkeys(_EN.split()))

_ZH = """
欢迎 光临 谢谢 你好 再见 早上 上午 下午 晚上 今天 明天 昨天 星期 周末 时间 营业 服务 中心 休息 购物
超市 商店 市场 商品 价格 买卖 饭馆 茶馆 咖啡 面包 牛奶 水果 苹果 香蕉 西瓜 大米 鸡蛋 白糖 花草
医院 学校 银行 邮局 图书馆 博物馆 公园 公司 工厂 办公 楼层 男女 老少 朋友 同事 欢乐 幸福 平安 美好
出口 入口 安全 禁止 停车 吸烟 请勿 注意 小心 危险 推开 拉开 开关 火车 飞机 汽车 公交 地铁 车站 机场
大门 东门 西门 南门 北门 路口 大街 城市 山水 花园 春天 夏天 秋天 冬天 下雨 下雪 白云 明月 风雨
红色 黄色 绿色 蓝色 黑色 白色 金色 开心 快乐 新年 发财 福气 长寿 和平 真心 美丽 精神 力气
中国 国家 大学 小学 学生 老师 生日 喜事 好运 天下 大地 江山 万家 千里 一路 前进 公平 信用
茶点 酒馆 牛肉 猪肉 鸡肉 鱼肉 面馆 小吃 饭店 酒店 电话 手机 电车 马车 白马 龙门 凤凰 老虎 小猫
"""
ZH_WORDS: list[str] = [w for w in dict.fromkeys(_ZH.split()) if all(c in COMMON_ZH_CHARS for c in w)]


def load_vocab(path: str) -> tuple[list[str], list[str]]:
    """(english words, chinese words) from a UTF-8 file, one word per line (whitespace-free)."""
    from .schema import detect_lang
    en, zh = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            for w in line.split():
                (zh if detect_lang(w) == "zh" else en).append(w)
    return list(dict.fromkeys(en)), list(dict.fromkeys(zh))


def random_vocab(n_en: int, n_zh: int, seed: int = 0, exclude: frozenset = frozenset(),
                 en_len: tuple = (2, 9), zh_len: tuple = (1, 3), include_builtin: bool = True) -> list[str]:
    """``n_en`` random lower-case Latin strings and ``n_zh`` random strings of ``COMMON_ZH_CHARS`` (lengths drawn
    from ``en_len`` / ``zh_len``), none in ``exclude``; then ``EN_WORDS`` + ``ZH_WORDS`` with ``include_builtin``.

    Training on a few hundred real words lets a model learn them as wholes; strings no dictionary holds only
    pay off by reading letter by letter. Deterministic in ``seed``."""
    import random
    import string
    rng = random.Random(f"vocab/{seed}")
    chars = sorted(COMMON_ZH_CHARS)

    def draw(n, alphabet, lengths):
        out: dict = {}
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 50 * n + 1000:
                raise ValueError(f"cannot draw {n} distinct strings of length {lengths[0]}-{lengths[1]}")
            w = "".join(rng.choice(alphabet) for _ in range(rng.randint(*lengths)))
            if w not in exclude:
                out[w] = None
        return list(out)
    words = draw(n_en, string.ascii_lowercase, en_len) + draw(n_zh, chars, zh_len)
    if include_builtin:
        words += [w for w in EN_WORDS + ZH_WORDS if w not in exclude]
    return words


def main(argv=None) -> int:
    """``python -m textharmony.data.vocab --out FILE [--en 20000] [--zh 5000] [--seed 0] [--exclude FILE]
    [--no-builtin]``: write a random-string vocabulary for ``python -m textharmony.data.synth --vocab FILE``."""
    import argparse
    import os
    import sys
    ap = argparse.ArgumentParser(prog="python -m textharmony.data.vocab", description=random_vocab.__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--en", type=int, default=20000)
    ap.add_argument("--zh", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exclude", default=None, help="word list whose words never appear (e.g. a held-out vocabulary)")
    ap.add_argument("--no-builtin", action="store_true", help="leave out EN_WORDS / ZH_WORDS")
    a = ap.parse_args(argv)
    if a.en < 0 or a.zh < 0:
        print("error: --en and --zh must be >= 0", file=sys.stderr)
        return 2
    exclude: frozenset = frozenset()
    if a.exclude:
        if not os.path.isfile(a.exclude):
            print(f"error: --exclude '{a.exclude}' is not a file", file=sys.stderr)
            return 2
        en, zh = load_vocab(a.exclude)
        exclude = frozenset(en + zh)
    try:
        words = random_vocab(a.en, a.zh, a.seed, exclude, include_builtin=not a.no_builtin)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(words) + "\n")
    print(f"wrote {len(words)} words to {a.out} ({a.en} random Latin, {a.zh} random Chinese"
          f"{'' if a.no_builtin else ', + the built-in lists'}; {len(exclude)} excluded)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
