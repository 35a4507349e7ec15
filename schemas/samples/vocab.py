"""Realistic Chinese vocabulary for generated cases: people, firms, departments, items.

The items are modelled on real provincial catalogues (事项目录): their type, legal and
promised time limits, fee basis, certificate and required materials.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COMPLETION_TEXT", "DEPARTMENTS", "DISAGREE", "FIRM_FORMS", "FIRM_WORDS", "GIVEN",
    "INDUSTRIES", "OPINIONS", "OTHER_ORGS", "REFUSALS", "SPECIAL_REASONS", "SPECIAL_RESULTS",
    "SUPPLEMENT_REASONS", "SURNAMES", "Department", "ItemTemplate",
]


@dataclass(frozen=True, slots=True)
class ItemTemplate:
    """An approval item as a department's catalogue describes it."""

    name: str
    kind: str  # SXLX
    legal: tuple[int, str]  # FDSX, FDSXDW
    promised: tuple[int, str]  # CNSX, CNSXDW
    applicants: str  # "person", "company" or "any"
    materials: tuple[str, ...]
    certificate: str | None = None  # ZJMC when a certificate is issued
    fee: tuple[str, str] | None = None  # (SFYJ basis, SFJE amount in yuan)


@dataclass(frozen=True, slots=True)
class Department:
    """A kind of department that exists in every city and county."""

    name: str  # appended to the division name: 长沙市 + 市场监督管理局
    abbr: str  # two letters used in item codes and certificate numbers
    items: tuple[ItemTemplate, ...]


_ID = "申请人身份证明"
_LICENCE = "营业执照复印件"

DEPARTMENTS: tuple[Department, ...] = (
    Department("市场监督管理局", "SJ", (
        ItemTemplate("食品经营许可", "01", (20, "G"), (10, "G"), "company",
                     ("食品经营许可申请书", _LICENCE, "法定代表人身份证明",
                      "食品安全管理制度文本", "经营场所平面布局图"), "食品经营许可证"),
        ItemTemplate("企业设立登记", "01", (15, "G"), (3, "G"), "company",
                     ("公司登记（备案）申请书", "公司章程", "股东主体资格证明",
                      "住所使用证明"), "营业执照"),
        ItemTemplate("特种设备使用登记", "01", (15, "G"), (5, "G"), "company",
                     ("特种设备使用登记表", "产品合格证", "监督检验证明"), "特种设备使用登记证"),
        ItemTemplate("个体工商户设立登记", "07", (15, "G"), (1, "G"), "person",
                     ("个体工商户登记申请书", "经营者身份证明", "经营场所使用证明"), "营业执照"),
    )),
    Department("自然资源和规划局", "ZR", (
        ItemTemplate("建设用地规划许可证核发", "01", (20, "G"), (10, "G"), "company",
                     ("建设用地规划许可申请表", "建设项目用地预审与选址意见书",
                      "国有土地使用权出让合同", "宗地图"), "建设用地规划许可证"),
        ItemTemplate("不动产首次登记", "07", (30, "G"), (5, "G"), "any",
                     ("不动产登记申请书", _ID, "不动产权属来源证明", "不动产权籍调查成果"),
                     "不动产权证书", ("《不动产登记收费标准》：住宅类每件80元", "80.00")),
        ItemTemplate("乡村建设规划许可证核发", "01", (20, "G"), (15, "G"), "person",
                     ("乡村建设规划许可申请表", _ID, "宅基地批准文件", "建设工程设计方案"),
                     "乡村建设规划许可证"),
    )),
    Department("住房和城乡建设局", "ZJ", (
        ItemTemplate("建筑工程施工许可证核发", "01", (15, "G"), (7, "G"), "company",
                     ("建筑工程施工许可申请表", "建设工程规划许可证", "施工合同",
                      "施工图设计文件审查合格书"), "建筑工程施工许可证"),
        ItemTemplate("商品房预售许可", "01", (10, "G"), (7, "G"), "company",
                     ("商品房预售许可申请表", _LICENCE, "国有土地使用证", "商品房预售方案"),
                     "商品房预售许可证"),
        ItemTemplate("建筑业企业资质核准", "01", (20, "G"), (15, "G"), "company",
                     ("建筑业企业资质申请表", _LICENCE, "技术负责人任职证明"),
                     "建筑业企业资质证书"),
    )),
    Department("公安局", "GA", (
        ItemTemplate("居民身份证换领", "20", (60, "Z"), (30, "Z"), "person",
                     ("居民户口簿", "原居民身份证", "数码相片回执"), "居民身份证",
                     ("《居民身份证工本费标准》：换领每证20元", "20.00")),
        ItemTemplate("机动车驾驶证补领", "20", (1, "G"), (1, "G"), "person",
                     ("机动车驾驶证申请表", _ID, "身体条件证明"), "机动车驾驶证",
                     ("机动车驾驶证工本费：每证10元", "10.00")),
    )),
    Department("生态环境局", "HB", (
        ItemTemplate("建设项目环境影响报告书审批", "01", (60, "Z"), (30, "G"), "company",
                     ("环境影响报告书审批申请", "环境影响报告书（报批稿）", "公众参与说明"),
                     "环境影响报告书批复"),
        ItemTemplate("排污许可证核发", "01", (20, "G"), (15, "G"), "company",
                     ("排污许可证申请表", "自行监测方案", "污染防治设施说明"), "排污许可证"),
    )),
    Department("卫生健康局", "WJ", (
        ItemTemplate("医疗机构执业登记", "01", (45, "Z"), (20, "G"), "company",
                     ("医疗机构执业登记申请书", "设置医疗机构批准书", "房屋产权证明",
                      "医疗机构规章制度"), "医疗机构执业许可证"),
        ItemTemplate("公共场所卫生许可", "01", (20, "G"), (10, "G"), "any",
                     ("公共场所卫生许可申请表", _LICENCE, "卫生检测报告"), "公共场所卫生许可证"),
    )),
    Department("人力资源和社会保障局", "RS", (
        ItemTemplate("社会保险登记", "20", (5, "G"), (1, "G"), "company",
                     ("社会保险登记表", _LICENCE, "法定代表人身份证明")),
        ItemTemplate("失业保险金申领", "05", (20, "G"), (10, "G"), "person",
                     ("失业保险金申领登记表", _ID, "解除劳动合同证明")),
    )),
    Department("交通运输局", "JT", (
        ItemTemplate("道路货物运输经营许可", "01", (20, "G"), (10, "G"), "company",
                     ("道路货物运输经营申请表", "车辆技术等级评定证明", "驾驶人员从业资格证"),
                     "道路运输经营许可证"),
        ItemTemplate("出租汽车驾驶员从业资格注册", "01", (20, "G"), (10, "G"), "person",
                     ("从业资格注册申请表", _ID, "机动车驾驶证", "无犯罪记录证明"),
                     "出租汽车驾驶员从业资格证"),
    )),
)

SURNAMES = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = tuple(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅文斌鹏辉宇浩然"
    "子轩欣怡梓涵晨阳俊杰雨萱思远博文嘉怡诗琪海燕振华国庆卫东湘楚岳"
)
FIRM_WORDS = ("湘江", "麓山", "星城", "华泰", "鑫源", "恒达", "宏远", "瑞丰", "博通", "金辉",
              "天成", "盛世", "楚天", "银河", "汇丰", "中联", "远大", "岳麓", "橘洲", "潇湘",
              "顺发", "永兴", "长隆", "嘉禾", "和盛", "新华", "信达", "聚源", "众诚", "锦程")
INDUSTRIES = ("商贸", "餐饮管理", "建筑工程", "房地产开发", "科技", "物流", "医药", "环保科技",
              "食品", "汽车服务", "农业开发", "文化传媒", "机械制造", "电子")
FIRM_FORMS = ("有限公司", "有限责任公司", "股份有限公司")
OTHER_ORGS = ("个体劳动者协会", "餐饮行业协会", "慈善总会", "职业技能培训学校", "社区卫生服务站",
              "老年大学", "青年志愿者协会")

OPINIONS = {
    "1": ("申请材料齐全，符合法定形式，拟同意，提交审核。",
          "经现场核查，申请人符合法定条件，建议准予许可。",
          "材料经初审无误，拟按程序办理。"),
    "2": ("经审核，符合相关规定，同意承办人意见。", "材料真实有效，建议批准。", "审核通过。"),
    "3": ("同意。", "同意核发。", "准予许可。", "同意，按规定办理。"),
}
DISAGREE = "申请人不符合法定条件，不予许可。"
REFUSALS = ("申请事项不属于本机关职权范围，请向有关部门申请。", "申请人不具备申请资格。",
            "申请材料存在虚假内容。")
SUPPLEMENT_REASONS = ("申请材料不齐全，请补齐下列材料。", "材料不符合法定形式，请按要求补正。",
                      "部分材料已过有效期，请重新提供。")
SPECIAL_REASONS = {
    "A": ("案情复杂，经负责人批准延长审批期限。", "需征求相关部门意见，延长审批期限。"),
    "B": ("依法组织专家评审。", "依申请人要求举行听证。", "需进行现场检验检测。"),
}
SPECIAL_RESULTS = ("专家评审通过，恢复计时。", "听证结束，继续办理。", "检验检测合格。",
                   "延期届满，恢复计时。")
COMPLETION_TEXT = {
    "0": "准予许可，已制发证照。",
    "1": "不予许可，已退回申请人。",
    "6": "已办结。",
}
