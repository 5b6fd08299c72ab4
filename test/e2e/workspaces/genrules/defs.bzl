# `count` independent genrules that each take a second (so a burst overflows
# one slot), and one that concatenates them in order.
def slow_genrules(name, count):
    parts = []
    for i in range(count):
        num = ("00" + str(i))[-3:]
        part = "%s_%s" % (name, num)
        native.genrule(
            name = part,
            outs = [part + ".txt"],
            cmd = "sleep 1; echo item-%s > $@" % num,
        )
        parts.append(":" + part)
    native.genrule(
        name = name,
        srcs = parts,
        outs = [name + ".txt"],
        cmd = "cat $(SRCS) > $@",
    )
